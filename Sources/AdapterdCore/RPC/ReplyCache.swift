import MQTTRPC

/// A reply as published: body and MQTT properties.
public struct CachedReply: Sendable {
    public let payload: [UInt8]
    public let status: RPCStatus
}

/// Answers a duplicate request (same correlation within its window, as QoS 1 redelivery produces) with the
/// first execution's reply instead of executing it again, including a duplicate that arrives while the first is
/// still running.
public actor ReplyCache {
    private var entries: [String: (task: Task<CachedReply, Never>, expires: ContinuousClock.Instant)] = [:]
    private let capacity: Int

    public init(capacity: Int = 10_000) {
        self.capacity = capacity
    }

    /// The reply for `key`: the cached one, or the result of `compute` (run once) kept for `window`.
    public func reply(for key: String, window: Duration, compute: @escaping @Sendable () async -> CachedReply) async -> (reply: CachedReply, duplicate: Bool) {
        let now = ContinuousClock.now
        if let entry = entries[key], entry.expires > now {
            return (await entry.task.value, true)
        }
        if entries.count >= capacity { entries = entries.filter { $0.value.expires > now } }
        if entries.count >= capacity, let oldest = entries.min(by: { $0.value.expires < $1.value.expires })?.key {
            entries[oldest] = nil
        }
        let task = Task { await compute() }
        entries[key] = (task, now + window)
        return (await task.value, false)
    }
}
