import AdapterdClient

/// How one adapter version serves across some workers, from their metrics documents: requests, errors, p95
/// latency, the predicted-label distribution and the mean top-1 confidence (all since each worker loaded it).
public struct VersionFigures: Sendable, Equatable {
    /// Requests served and those that failed.
    public var requests = 0
    public var errors = 0
    /// The highest p95 latency among the workers, in milliseconds.
    public var p95Ms: Double?
    /// Requests by predicted label.
    public var labels: [String: Int] = [:]
    /// Sum and count of top-1 probabilities, for the mean.
    public var confidenceSum = 0.0
    public var confidenceCount = 0

    /// No requests yet.
    public init() {}

    /// The figures of (name, version) summed over `documents`. Counts are whatever a metrics topic carried (anyone
    /// may publish there), so negative ones count as none and sums saturate instead of trapping.
    public init(name: String, version: String, documents: [MetricsSnapshot]) {
        let add = Self.add
        for document in documents {
            guard let figures = document.adapters.first(where: { $0.name == name && $0.version == version }) else { continue }
            add(&requests, figures.requestsTotal)
            for count in figures.errorsTotal.values { add(&errors, count) }
            if let p95 = figures.latencyTotalMs?.p95 ?? figures.latencyMs?.p95, p95.isFinite { p95Ms = max(p95Ms ?? 0, p95) }
            var counted = 0
            for (label, count) in figures.labelsTotal ?? [:] {
                add(&labels[label, default: 0], count)
                add(&counted, count)
            }
            if let mean = figures.meanConfidence, mean.isFinite, counted > 0 {
                confidenceSum += mean * Double(counted)
                add(&confidenceCount, counted)
            }
        }
    }

    /// Adds `other`'s figures (the p95 is the higher of the two).
    public mutating func add(_ other: VersionFigures) {
        Self.add(&requests, other.requests)
        Self.add(&errors, other.errors)
        if let p95 = other.p95Ms { p95Ms = max(p95Ms ?? 0, p95) }
        for (label, count) in other.labels { Self.add(&labels[label, default: 0], count) }
        confidenceSum += other.confidenceSum
        Self.add(&confidenceCount, other.confidenceCount)
    }

    /// `total + count`, counting a negative count as none and saturating at `Int.max`.
    private static func add(_ total: inout Int, _ count: Int) {
        let (sum, overflow) = total.addingReportingOverflow(max(0, count))
        total = overflow ? .max : sum
    }

    /// Failed requests over all requests (0 without requests).
    public var errorRate: Double { requests == 0 ? 0 : Double(errors) / Double(requests) }
    /// Mean top-1 probability, when any classification was counted.
    public var meanConfidence: Double? { confidenceCount == 0 ? nil : confidenceSum / Double(confidenceCount) }

    /// Total variation distance between the label distributions (0: the same, 1: disjoint); nil when either has none.
    public func labelDrift(from other: VersionFigures) -> Double? {
        let mine = labels.values.reduce(0, +), theirs = other.labels.values.reduce(0, +)
        guard mine > 0, theirs > 0 else { return nil }
        let keys = Set(labels.keys).union(other.labels.keys)
        return keys.reduce(0) { $0 + abs(Double(labels[$1] ?? 0) / Double(mine) - Double(other.labels[$1] ?? 0) / Double(theirs)) } / 2
    }

    /// Why the new version (`self`) breaks `policy` against `baseline`, or nil when it does not.
    public func violation(of policy: RolloutPolicy, against baseline: VersionFigures) -> String? {
        if errorRate - baseline.errorRate > policy.maxErrorRateIncrease {
            return String(format: "error rate %.1f%% against %.1f%% for the previous version (more than %.0f points higher)", errorRate * 100, baseline.errorRate * 100, policy.maxErrorRateIncrease * 100)
        }
        if let p95 = p95Ms, let before = baseline.p95Ms, before > 0, p95 / before > policy.maxLatencyRatio {
            return String(format: "p95 latency %.1f ms against %.1f ms for the previous version (over %.1f×)", p95, before, policy.maxLatencyRatio)
        }
        if let drift = labelDrift(from: baseline), drift > policy.maxLabelDrift {
            let top = labels.max { $0.value < $1.value }?.key ?? "?"
            let before = baseline.labels.max { $0.value < $1.value }?.key ?? "?"
            return String(format: "predicted labels drifted by %.2f (total variation, over %.2f): most often '%@' where the previous version said '%@'", drift, policy.maxLabelDrift, top, before)
        }
        if let mean = meanConfidence, let before = baseline.meanConfidence, before - mean > policy.maxConfidenceDrop {
            return String(format: "mean top-1 confidence %.2f against %.2f for the previous version (a drop over %.2f)", mean, before, policy.maxConfidenceDrop)
        }
        return nil
    }
}
