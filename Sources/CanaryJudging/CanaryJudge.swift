import Foundation

/// The one canary judge: whether a new version breaks the thresholds against the version it replaces, and why.
/// The worker's rollout guard asks it about a split's canary on that worker; the fleet controller about a wave.
public enum CanaryJudge {
    /// Whether both have served enough to be judged (`thresholds.minRequests` each).
    public static func canJudge(_ canary: CanaryFigures, against baseline: CanaryFigures, thresholds: CanaryThresholds) -> Bool {
        canary.requests >= thresholds.minRequests && baseline.requests >= thresholds.minRequests
    }

    /// Why `canary` breaks `thresholds` against `baseline` (named `baselineName` in the reason), or nil when it does
    /// not. Checks in order: error rate, p95 latency, label drift, confidence drop; a figure either side lacks
    /// (no latency measured, no classification) is not compared.
    public static func violation(of canary: CanaryFigures, against baseline: CanaryFigures, named baselineName: String, thresholds: CanaryThresholds) -> String? {
        let over = "over \(canary.requests) requests"
        if canary.errorRate - baseline.errorRate > thresholds.maxErrorRateIncrease {
            return String(format: "error rate %.1f%% against %.1f%% for %@ (more than %.0f points higher), %@",
                          canary.errorRate * 100, baseline.errorRate * 100, baselineName, thresholds.maxErrorRateIncrease * 100, over)
        }
        if let p95 = canary.p95Ms, let before = baseline.p95Ms, p95 > thresholds.maxLatencyRatio * before {
            return String(format: "p95 latency %.2f ms against %.2f ms for %@ (over %.1f×), %@", p95, before, baselineName, thresholds.maxLatencyRatio, over)
        }
        if let drift = canary.labelDrift(from: baseline), drift > thresholds.maxLabelDrift {
            let top = canary.labels.max { $0.value < $1.value }?.key ?? "?"
            let before = baseline.labels.max { $0.value < $1.value }?.key ?? "?"
            return String(format: "predicted labels drifted by %.2f (total variation, over %.2f): most often '%@' where %@ said '%@'",
                          drift, thresholds.maxLabelDrift, top, baselineName, before)
        }
        if let mean = canary.meanConfidence, let before = baseline.meanConfidence, before - mean > thresholds.maxConfidenceDrop {
            return String(format: "mean top-1 confidence %.2f against %.2f for %@ (a drop over %.2f)", mean, before, baselineName, thresholds.maxConfidenceDrop)
        }
        return nil
    }
}
