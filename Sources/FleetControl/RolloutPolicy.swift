import CanaryJudging
import Foundation

/// How a fleet rollout proceeds: wave sizes, what a wave must show before the next, when to abort, and how
/// workers that do not answer count.
public struct RolloutPolicy: Codable, Sendable, Equatable {
    /// Workers in the first (canary) wave.
    public var canary = 1
    /// Each later wave is this many times the one before (exponential rate, as Greengrass's rollouts).
    public var growth = 2.0
    /// Requests the new version must serve on a wave's workers (all together) before it is judged…
    public var minRequests = CanaryThresholds().minRequests
    /// …and time it must serve them for at least (seconds).
    public var soakSeconds = 5.0
    /// Longest a wave may wait for `minRequests` (seconds); then it is judged on what it has, or aborted when the
    /// new version served nothing.
    public var waveTimeoutSeconds = 120.0
    /// The canary judge's thresholds, flat (as the rollout's state file stores them); defaults from
    /// `CanaryThresholds`, the same as the worker's rollout guard.
    public var maxErrorRateIncrease = CanaryThresholds().maxErrorRateIncrease
    public var maxLatencyRatio = CanaryThresholds().maxLatencyRatio
    public var maxLabelDrift = CanaryThresholds().maxLabelDrift
    public var maxConfidenceDrop = CanaryThresholds().maxConfidenceDrop
    /// Shadow comparison: the fraction (0…1) of the new version's requests each worker also runs on the version it
    /// replaced, off the reply path; nil or 0: none.
    public var shadow: Double?
    /// Stop when less than this share of shadow-compared requests got the replaced version's label (needs `shadow`).
    public var minAgreement: Double?
    /// Seconds a worker's push and activation may take.
    public var workerTimeoutSeconds = 30.0
    /// Attempts at a worker that does not answer before the `offline` policy applies.
    public var retries = 2
    /// What an unreachable worker counts as: `skip` (left alone and reported) or `fail` (aborts the rollout).
    public var offline = "skip"

    /// The defaults.
    public init() {}

    /// What a wave is judged by.
    public var thresholds: CanaryThresholds {
        CanaryThresholds(
            minRequests: minRequests, maxErrorRateIncrease: maxErrorRateIncrease, maxLatencyRatio: maxLatencyRatio,
            maxLabelDrift: maxLabelDrift, maxConfidenceDrop: maxConfidenceDrop, minAgreement: minAgreement)
    }

    /// `workerTimeoutSeconds` as a duration.
    public var workerTimeout: Duration { .milliseconds(Int64(workerTimeoutSeconds * 1000)) }

    /// Checks the values.
    public func validate() throws(FleetError) {
        guard canary >= 1 else { throw .invalidPolicy("canary must be at least 1 worker") }
        guard growth >= 1 else { throw .invalidPolicy("growth must be at least 1") }
        guard minRequests >= 0, soakSeconds >= 0, waveTimeoutSeconds > 0, workerTimeoutSeconds > 0, retries >= 0 else {
            throw .invalidPolicy("requests, seconds and retries must not be negative")
        }
        if let shadow, !(shadow.isFinite && (0...1).contains(shadow)) { throw .invalidPolicy("shadow must be a fraction from 0 to 1, not \(shadow)") }
        if let minAgreement {
            guard minAgreement.isFinite, (0...1).contains(minAgreement) else { throw .invalidPolicy("min-agreement must be from 0 to 1, not \(minAgreement)") }
            guard (shadow ?? 0) > 0 else { throw .invalidPolicy("min-agreement judges shadow comparisons: give --shadow too") }
        }
        guard ["skip", "fail"].contains(offline) else { throw .invalidPolicy("offline must be skip or fail, not \(offline)") }
    }

    /// Wave sizes for `count` workers: the canary wave, then each `growth` times the one before.
    public func waves(for count: Int) -> [Int] {
        var sizes: [Int] = []
        var remaining = count
        var size = Double(min(canary, count))
        while remaining > 0 {
            let take = min(remaining, max(1, Int(size.rounded(.down))))
            sizes.append(take)
            remaining -= take
            size = max(size * growth, size + 1)
        }
        return sizes
    }
}
