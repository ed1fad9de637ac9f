import MQTTRPC

/// A reply as published: body and MQTT properties.
public struct CachedReply: Sendable {
    public let payload: [UInt8]
    public let status: RPCStatus

    public init(payload: [UInt8], status: RPCStatus) {
        self.payload = payload
        self.status = status
    }
}

/// Answers a duplicate request (same correlation within its window, as QoS 1 redelivery produces) with the
/// first execution's reply instead of executing it again, including a duplicate that arrives while the first is
/// still running.
///
/// Bounded by entries and by reply bytes, whatever the request rate: the oldest entries go first (a duplicate
/// arriving after its entry was evicted runs again, which is what a cache this size trades for bounded memory).
public actor ReplyCache {
    private struct Entry {
        /// The first execution while it runs, then only its reply: a finished Task kept alive holds its allocator
        /// slabs (a soak at 50 req/s held ~15 KB per cached reply that way, +47 MB over the 60-second window).
        enum State {
            case running(Task<CachedReply, Never>)
            case done(CachedReply)
        }

        var state: State
        let expires: ContinuousClock.Instant
        var bytes = 0
    }

    private var entries: [String: Entry] = [:]
    /// Keys in insertion order, for eviction; `head` is the oldest still counted.
    private var order: [String] = []
    private var head = 0
    private var bytes = 0
    private let capacity: Int
    private let maxBytes: Int

    /// A cache of at most `capacity` replies and `maxBytes` reply bytes.
    public init(capacity: Int = 10_000, maxBytes: Int = 8 << 20) {
        self.capacity = capacity
        self.maxBytes = maxBytes
    }

    /// The reply for `key`: the cached one, or the result of `compute` (run once) kept for `window`.
    public func reply(for key: String, window: Duration, compute: @escaping @Sendable () async -> CachedReply) async -> (reply: CachedReply, duplicate: Bool) {
        let now = ContinuousClock.now
        if let entry = entries[key], entry.expires > now {
            switch entry.state {
            case .running(let task): return (await task.value, true)
            case .done(let reply): return (reply, true)
            }
        }
        if let stale = entries.removeValue(forKey: key) { bytes -= stale.bytes }
        evict(now: now, reserving: 1)
        let task = Task { await compute() }
        entries[key] = Entry(state: .running(task), expires: now + window)
        order.append(key)
        let reply = await task.value
        // The entry may have been evicted or replaced while the reply was computed.
        if case .running(let running)? = entries[key]?.state, running == task {
            entries[key]?.state = .done(reply)
            entries[key]?.bytes = reply.payload.count
            bytes += reply.payload.count
            evict(now: ContinuousClock.now, reserving: 0)
        }
        return (reply, false)
    }

    /// Replies held, and their bytes.
    public var size: (entries: Int, bytes: Int) { (entries.count, bytes) }

    /// Drops the oldest entries while there are too many, too many bytes, or the oldest has expired.
    private func evict(now: ContinuousClock.Instant, reserving: Int) {
        while head < order.count {
            let key = order[head]
            guard let entry = entries[key] else {
                head += 1
                continue
            }
            guard entries.count + reserving > capacity || bytes > maxBytes || entry.expires <= now else { break }
            entries[key] = nil
            bytes -= entry.bytes
            head += 1
        }
        // Compact the order list once most of it is spent.
        if head > 1024, head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
    }
}
