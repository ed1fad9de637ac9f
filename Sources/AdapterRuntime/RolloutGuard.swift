import CanaryJudging

/// Tracks error rate and latency per adapter version during rollouts and says when a canary has gone bad.
public actor RolloutGuard {
    struct Window {
        var requests = 0
        var errors = 0
        /// The most recent latencies (ms), for p95.
        var latencies: [Double] = []

        var figures: CanaryFigures {
            CanaryFigures(requests: requests, errors: errors, p95Ms: latencies.isEmpty ? nil : Percentile.of(latencies.sorted(), 0.95))
        }
    }

    /// When a canary goes back (the same thresholds the fleet controller judges waves by).
    public let policy: CanaryThresholds
    private var windows: [AdapterCache.Key: Window] = [:]
    static let keptLatencies = 500

    /// A guard judging by `policy`.
    public init(policy: CanaryThresholds) {
        self.policy = policy
    }

    /// Records one request served by `key`.
    public func record(_ key: AdapterCache.Key, ok: Bool, latencyMs: Double) {
        var window = windows[key, default: Window()]
        window.requests += 1
        if !ok { window.errors += 1 }
        window.latencies.append(latencyMs)
        if window.latencies.count > Self.keptLatencies { window.latencies.removeFirst(window.latencies.count - Self.keptLatencies) }
        windows[key] = window
    }

    /// The first canary of `rollout` that breaks the policy against `stable`, with why; nil when all is well.
    public func verdict(_ rollout: Rollout, stable: String) -> (canary: String, reason: String)? {
        guard let base = windows[AdapterCache.Key(name: rollout.name, version: stable)]?.figures else { return nil }
        for split in rollout.splits where split.version != stable {
            guard let canary = windows[AdapterCache.Key(name: rollout.name, version: split.version)]?.figures,
                  CanaryJudge.canJudge(canary, against: base, thresholds: policy) else { continue }
            // Not final: a split keeps serving while the figures cannot yet tell a worse version from noise.
            let judged = CanaryJudge.verdict([CanaryStratum(worker: "", canary: canary, baseline: base)], named: stable, thresholds: policy, final: false)
            if let reason = judged.violation { return (split.version, reason) }
        }
        return nil
    }

    /// Forgets the figures of `name` (a new rollout starts from scratch).
    public func reset(name: String) {
        windows = windows.filter { $0.key.name != name }
    }
}
