
/// When a canary must be rolled back: over at least `minRequests` each, the canary's error rate exceeds the stable
/// version's by more than `maxErrorRateIncrease`, or its p95 latency exceeds `maxLatencyRatio` × the stable one's.
public struct GuardPolicy: Sendable, Equatable {
    public var minRequests: Int
    public var maxErrorRateIncrease: Double
    public var maxLatencyRatio: Double

    public init(minRequests: Int = 50, maxErrorRateIncrease: Double = 0.05, maxLatencyRatio: Double = 1.5) {
        self.minRequests = minRequests
        self.maxErrorRateIncrease = maxErrorRateIncrease
        self.maxLatencyRatio = maxLatencyRatio
    }
}

/// Tracks error rate and latency per adapter version during rollouts and says when a canary has gone bad.
public actor RolloutGuard {
    struct Window {
        var requests = 0
        var errors = 0
        /// The most recent latencies (ms), for p95.
        var latencies: [Double] = []

        var errorRate: Double { requests == 0 ? 0 : Double(errors) / Double(requests) }

        var p95: Double {
            guard !latencies.isEmpty else { return 0 }
            return Percentile.of(latencies.sorted(), 0.95)
        }
    }

    public let policy: GuardPolicy
    private var windows: [AdapterCache.Key: Window] = [:]
    static let keptLatencies = 500

    public init(policy: GuardPolicy) {
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
        guard let base = windows[AdapterCache.Key(name: rollout.name, version: stable)], base.requests >= policy.minRequests else { return nil }
        for split in rollout.splits where split.version != stable {
            guard let canary = windows[AdapterCache.Key(name: rollout.name, version: split.version)], canary.requests >= policy.minRequests else { continue }
            if canary.errorRate - base.errorRate > policy.maxErrorRateIncrease {
                return (split.version, "error rate \(Self.percent(canary.errorRate)) vs \(Self.percent(base.errorRate)) on \(stable) over \(canary.requests) requests")
            }
            if canary.p95 > policy.maxLatencyRatio * base.p95 {
                return (split.version, "p95 latency \(Self.milliseconds(canary.p95)) vs \(Self.milliseconds(base.p95)) on \(stable) over \(canary.requests) requests")
            }
        }
        return nil
    }

    /// Forgets the figures of `name` (a new rollout starts from scratch).
    public func reset(name: String) {
        windows = windows.filter { $0.key.name != name }
    }

    static func percent(_ value: Double) -> String { String(format: "%.1f%%", value * 100) }
    static func milliseconds(_ value: Double) -> String { String(format: "%.2f ms", value) }
}
