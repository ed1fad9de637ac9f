/// When a new version serving beside the one it replaces must be stopped: the one set of thresholds the worker's
/// rollout guard (A/B splits on one worker) and the fleet controller (waves across workers) judge by.
public struct CanaryThresholds: Codable, Sendable, Equatable {
    /// Requests the new version must have served (and the old one, on a worker's split) before it is judged.
    public var minRequests: Int
    /// Stop when the new version's error rate exceeds the old one's by more than this (0…1).
    public var maxErrorRateIncrease: Double
    /// Stop when the new version's p95 latency is more than this times the old one's.
    public var maxLatencyRatio: Double
    /// Stop when the predicted-label distributions differ by more than this (total variation distance, 0…1).
    public var maxLabelDrift: Double
    /// Stop when the new version's mean top-1 confidence is lower than the old one's by more than this.
    public var maxConfidenceDrop: Double
    /// Stop when fewer of the new version's shadow-compared requests than this share (0…1) got the old version's
    /// label; nil: agreement is not judged (no shadow comparison asked for).
    public var minAgreement: Double?

    /// The defaults: 50 requests, 5 points of error rate, 1.5× the p95 latency, a label drift of 0.3 and a
    /// confidence drop of 0.2.
    public init(
        minRequests: Int = 50, maxErrorRateIncrease: Double = 0.05, maxLatencyRatio: Double = 1.5, maxLabelDrift: Double = 0.3,
        maxConfidenceDrop: Double = 0.2, minAgreement: Double? = nil
    ) {
        self.minAgreement = minAgreement
        self.minRequests = minRequests
        self.maxErrorRateIncrease = maxErrorRateIncrease
        self.maxLatencyRatio = maxLatencyRatio
        self.maxLabelDrift = maxLabelDrift
        self.maxConfidenceDrop = maxConfidenceDrop
    }
}
