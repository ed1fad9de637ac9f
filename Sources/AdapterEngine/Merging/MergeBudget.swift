import Synchronization

/// The memory an engine may spend on adapters merged into private copies of the layers they change
/// (`InferenceEngine.prepareMerged`), and which adapters hold it. When a new adapter does not fit, the adapters
/// merged longest ago without use (idle at least `idleBeforeEviction`) give theirs up; an adapter that is released
/// gives its bytes back too. Uniform batches of adapters not merged yet are offered as `requests`, for a background
/// task to merge.
public final class MergeBudget: Sendable {
    /// Bytes the merged layers may hold in all.
    public let limit: Int
    /// How long a merged adapter must have gone unused before a newer one may take its memory: two adapters taking
    /// turns in a budget for one must not be merged and dropped at every batch.
    public let idleBeforeEviction: Duration
    /// After a refusal, how long requests are not offered again (each would be refused the same way).
    static let quietAfterRefusal: Duration = .seconds(1)

    /// Adapters whose uniform batches ran unmerged, for `InferenceEngine.prepareMerged` (the worker consumes them).
    public let requests: AsyncStream<MergeRequest>
    private let continuation: AsyncStream<MergeRequest>.Continuation

    private struct Entry {
        weak var adapter: LoRAAdapter?
        var bytes: Int
        var lastUsed: ContinuousClock.Instant
        /// The plans (`ExecutionPlan.id`) the adapter is merged for.
        var plans: [UInt64]
    }

    private struct State {
        var entries: [ObjectIdentifier: Entry] = [:]
        /// Requested and not merged (or refused) yet.
        var pending: Set<ObjectIdentifier> = []
        /// Being merged now.
        var merging: Set<ObjectIdentifier> = []
        var lastRefusal: ContinuousClock.Instant?

        /// Forgets adapters that were released (their merged layers went with them).
        mutating func prune() {
            entries = entries.filter { $0.value.adapter != nil }
        }

        var used: Int { entries.values.reduce(0) { $0 + $1.bytes } }
    }

    private let state = Mutex(State())

    /// A budget of `limit` bytes, whose merged adapters may give way to newer ones after `idleBeforeEviction`.
    public init(limit: Int, idleBeforeEviction: Duration = .seconds(30)) {
        self.limit = limit
        self.idleBeforeEviction = idleBeforeEviction
        (requests, continuation) = AsyncStream.makeStream(of: MergeRequest.self, bufferingPolicy: .unbounded)
    }

    deinit { continuation.finish() }

    /// Ends `requests` (the worker is stopping): later offers are dropped.
    public func finishRequests() { continuation.finish() }

    /// Bytes merged layers hold now.
    public var bytes: Int {
        state.withLock { state in
            state.prune()
            return state.used
        }
    }

    /// Adapters merged now.
    public var mergedCount: Int {
        state.withLock { state in
            state.prune()
            return state.entries.count
        }
    }

    /// Forgets `request` when its adapter was released before it could be merged (so that another adapter at the
    /// same address may be offered).
    public func withdraw(_ request: MergeRequest) {
        _ = state.withLock { $0.pending.remove(request.id) }
    }

    /// Offers `adapter` (whose uniform batch just ran unmerged) for merging, once until it is merged or refused
    /// (every adapter is queued at most once, so the queue holds at most one request per adapter).
    func request(_ adapter: LoRAAdapter) {
        let id = ObjectIdentifier(adapter)
        let offer = state.withLock { state -> Bool in
            guard state.entries[id] == nil || state.entries[id]?.adapter == nil, !state.pending.contains(id) else { return false }
            if let refused = state.lastRefusal, ContinuousClock.now - refused < Self.quietAfterRefusal { return false }
            state.pending.insert(id)
            return true
        }
        if offer { continuation.yield(MergeRequest(adapter: adapter)) }
    }

    /// Marks `adapter` as being merged; false when another merge of it runs.
    func begin(_ adapter: LoRAAdapter) -> Bool {
        state.withLock { $0.merging.insert(ObjectIdentifier(adapter)).inserted }
    }

    /// Ends what `begin` started (merged or not).
    func end(_ adapter: LoRAAdapter) {
        state.withLock { state in
            state.merging.remove(ObjectIdentifier(adapter))
            state.pending.remove(ObjectIdentifier(adapter))
        }
    }

    /// Takes `bytes` for `adapter`'s layers merged for `plans`, dropping the merged layers of adapters idle for
    /// `idleBeforeEviction` (least recently used first) when they do not fit; false (taking and dropping nothing)
    /// when even that would not make room.
    func reserve(_ bytes: Int, for adapter: LoRAAdapter, plans: [UInt64]) -> Bool {
        let now = ContinuousClock.now
        let victims = state.withLock { state -> [Entry]? in
            state.prune()
            let id = ObjectIdentifier(adapter)
            var free = limit - state.used
            var victims: [Entry] = []
            let idle = state.entries.filter { $0.key != id && now - $0.value.lastUsed >= idleBeforeEviction }
                .sorted { $0.value.lastUsed < $1.value.lastUsed }
            for (key, entry) in idle where free < bytes {
                victims.append(entry)
                state.entries[key] = nil
                free += entry.bytes
            }
            guard free >= bytes else {
                // Put the victims back: nothing is dropped for a merge that cannot happen.
                for victim in victims { if let kept = victim.adapter { state.entries[ObjectIdentifier(kept)] = victim } }
                state.lastRefusal = now
                return nil
            }
            var entry = state.entries[id] ?? Entry(adapter: adapter, bytes: 0, lastUsed: now, plans: [])
            entry.bytes += bytes
            entry.plans += plans
            state.entries[id] = entry
            return victims
        }
        guard let victims else { return false }
        for victim in victims { victim.adapter?.merges.remove(plans: victim.plans) }
        return true
    }

    /// Notes that a batch ran on `adapter`'s merged layers.
    func used(_ adapter: LoRAAdapter) {
        state.withLock { $0.entries[ObjectIdentifier(adapter)]?.lastUsed = .now }
    }
}

/// An adapter offered for merging (`MergeBudget.requests`), held weakly: one released meanwhile is not merged.
public struct MergeRequest: Sendable {
    /// The adapter, while something else still holds it.
    public var adapter: LoRAAdapter? { box.adapter }
    let id: ObjectIdentifier
    private let box: WeakAdapter

    init(adapter: LoRAAdapter) {
        id = ObjectIdentifier(adapter)
        box = WeakAdapter(adapter)
    }

    private final class WeakAdapter: Sendable {
        nonisolated(unsafe) weak var adapter: LoRAAdapter?
        init(_ adapter: LoRAAdapter) { self.adapter = adapter }
    }
}
