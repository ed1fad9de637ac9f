/// One criterion of a canary verdict: the figure, its interval at `CanaryJudge.confidence`, the threshold and what
/// they decide.
public struct CanaryCriterion: Sendable, Equatable, Codable {
    /// What the criterion decided.
    public enum Outcome: String, Sendable, Codable {
        /// The whole interval is within the threshold.
        case pass
        /// The whole interval is past the threshold.
        case fail
        /// The interval straddles the threshold: more requests are needed.
        case undecided
    }

    /// "error rate increase", "p95 latency ratio", "label drift" or "confidence drop".
    public var name: String
    /// The figure, combined over the workers (each weighted by the new version's requests there).
    public var value: Double
    /// Its interval (equal to `value` where the workers' reports allow none: latency and confidence).
    public var low: Double
    public var high: Double
    /// The limit the figure must stay within.
    public var threshold: Double
    public var outcome: Outcome
    /// Requests (or labelled requests) of the new version it rests on, and the number its interval needs to be at
    /// most half the threshold wide, derived from what was seen.
    public var samples: Int
    public var needed: Int

    /// "label drift 0.04 (0.00–0.11, threshold 0.30): pass over 240 requests".
    public var summary: String {
        let interval = low == high ? "" : " (\(Self.format(low))–\(Self.format(high)))"
        return "\(name) \(Self.format(value))\(interval), threshold \(Self.format(threshold)): \(outcome.rawValue) over \(samples) requests"
            + (outcome == .undecided ? ", about \(needed) needed" : "")
    }

    static func format(_ value: Double) -> String {
        let rounded = (value * 1000).rounded() / 1000
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
    }
}

/// What the canary judge found: each criterion, and the first that failed.
public struct CanaryVerdict: Sendable, Equatable, Codable {
    /// Every criterion the figures allowed (one either side lacks is left out).
    public var criteria: [CanaryCriterion]
    /// Why the new version must be stopped, or nil.
    public var violation: String?

    /// A verdict of `criteria`, stopped for `violation` when given.
    public init(criteria: [CanaryCriterion], violation: String?) {
        self.criteria = criteria
        self.violation = violation
    }

    /// Whether any criterion still needs more requests.
    public var undecided: Bool { criteria.contains { $0.outcome == .undecided } }
}
