/// How one adapter version served: requests, errors, p95 latency, the predicted-label distribution and the mean
/// top-1 confidence. Counts come from other processes' reports (anyone may publish a metrics document), so sums
/// count negative counts as none and saturate instead of trapping.
public struct CanaryFigures: Sendable, Equatable {
    /// Requests served and those that failed.
    public var requests = 0
    public var errors = 0
    /// The p95 latency in milliseconds (over several workers: the highest), nil when nothing was measured.
    public var p95Ms: Double?
    /// Requests by predicted label.
    public var labels: [String: Int] = [:]
    /// Sum and count of top-1 probabilities, for the mean.
    public var confidenceSum = 0.0
    public var confidenceCount = 0
    /// Shadow comparisons with the replaced version that had labels on both sides, and those that agreed.
    public var shadowCompared = 0
    public var shadowAgreed = 0

    /// No requests yet.
    public init() {}

    /// Figures with these values (the p95 and confidence only when finite).
    public init(requests: Int, errors: Int, p95Ms: Double?, labels: [String: Int] = [:], meanConfidence: Double? = nil) {
        Self.add(&self.requests, requests)
        Self.add(&self.errors, errors)
        self.p95Ms = p95Ms.flatMap { $0.isFinite ? $0 : nil }
        var counted = 0
        for (label, count) in labels {
            Self.add(&self.labels[label, default: 0], count)
            Self.add(&counted, count)
        }
        if let meanConfidence, meanConfidence.isFinite, counted > 0 {
            confidenceSum = meanConfidence * Double(counted)
            confidenceCount = counted
        }
    }

    /// Adds `other`'s figures (the p95 is the higher of the two).
    public mutating func add(_ other: CanaryFigures) {
        Self.add(&requests, other.requests)
        Self.add(&errors, other.errors)
        if let p95 = other.p95Ms { p95Ms = max(p95Ms ?? 0, p95) }
        for (label, count) in other.labels { Self.add(&labels[label, default: 0], count) }
        confidenceSum += other.confidenceSum
        Self.add(&confidenceCount, other.confidenceCount)
        Self.add(&shadowCompared, other.shadowCompared)
        Self.add(&shadowAgreed, other.shadowAgreed)
    }

    /// The sum of `counts`, each negative one counted as none, saturating at `Int.max`.
    public static func total(_ counts: some Sequence<Int>) -> Int {
        counts.reduce(into: 0) { add(&$0, $1) }
    }

    /// `total + count`, counting a negative count as none and saturating at `Int.max`.
    public static func add(_ total: inout Int, _ count: Int) {
        let (sum, overflow) = total.addingReportingOverflow(max(0, count))
        total = overflow ? .max : sum
    }

    /// Failed requests over all requests (0 without requests).
    public var errorRate: Double { requests == 0 ? 0 : Double(errors) / Double(requests) }
    /// Mean top-1 probability, when any classification was counted.
    public var meanConfidence: Double? { confidenceCount == 0 ? nil : confidenceSum / Double(confidenceCount) }

    /// Total variation distance between the label distributions (0: the same, 1: disjoint); nil when either has none.
    public func labelDrift(from other: CanaryFigures) -> Double? {
        guard Self.total(labels.values) > 0, Self.total(other.labels.values) > 0 else { return nil }
        return LabelDriftBootstrap.tvd(labels, other.labels)
    }
}
