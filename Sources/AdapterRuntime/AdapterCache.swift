import AdapterEngine

/// Adapters held ready in memory under a byte budget.
///
/// Least-recently-used adapters are evicted when the budget is exceeded, except pinned names and adapters that a
/// request in flight holds (reference counts). A miss loads through `loader` (which maps the files) while other
/// requests keep running; concurrent misses for the same key share one load.
public actor AdapterCache {
    /// Identifies one adapter version.
    public struct Key: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public let version: String

        public init(name: String, version: String) {
            self.name = name
            self.version = version
        }

        public var description: String { "\(name)@\(version)" }
    }

    /// What the cache has done.
    public struct Counters: Sendable, Equatable {
        public var hits = 0
        public var misses = 0
        public var loads = 0
        public var evictions = 0
        public var bytes = 0
        /// Total seconds spent loading.
        public var loadSeconds = 0.0

        public init() {}
    }

    private struct Slot {
        let adapter: LoRAAdapter
        var references: Int
        var lastUsed: UInt64
    }

    /// Largest number of adapter bytes held (may be exceeded only by pinned or in-flight adapters).
    public let maxBytes: Int
    private let loader: @Sendable (Key) async throws -> LoRAAdapter
    private var slots: [Key: Slot] = [:]
    private var loading: [Key: Task<LoRAAdapter, any Error>] = [:]
    private var pinned: Set<String> = []
    private var clock: UInt64 = 0
    public private(set) var counters = Counters()
    /// Holds requests have on adapters right now (acquired, not yet released).
    public var heldCount: Int { slots.values.reduce(0) { $0 + $1.references } }

    public init(maxBytes: Int, loader: @escaping @Sendable (Key) async throws -> LoRAAdapter) {
        self.maxBytes = maxBytes
        self.loader = loader
    }

    /// The adapter for `key`, held until `release(key)`: loaded on a miss, evicting others if need be.
    public func acquire(_ key: Key) async throws -> LoRAAdapter {
        clock += 1
        if var slot = slots[key] {
            counters.hits += 1
            slot.references += 1
            slot.lastUsed = clock
            slots[key] = slot
            return slot.adapter
        }
        counters.misses += 1
        let task: Task<LoRAAdapter, any Error>
        if let pending = loading[key] {
            task = pending
        } else {
            let loader = loader
            task = Task { try await loader(key) }
            loading[key] = task
        }
        let started = ContinuousClock.now
        let adapter: LoRAAdapter
        do {
            adapter = try await task.value
        } catch {
            loading[key] = nil
            throw error
        }
        clock += 1
        if var slot = slots[key] {
            // Another waiter of the same load got here first.
            slot.references += 1
            slot.lastUsed = clock
            slots[key] = slot
            return slot.adapter
        }
        loading[key] = nil
        let elapsed = ContinuousClock.now - started
        counters.loads += 1
        counters.loadSeconds += elapsed.inSeconds
        slots[key] = Slot(adapter: adapter, references: 1, lastUsed: clock)
        counters.bytes += adapter.byteSize
        evictIfNeeded()
        return adapter
    }

    /// Gives back a reference taken by `acquire`.
    public func release(_ key: Key) {
        guard var slot = slots[key] else { return }
        slot.references = max(0, slot.references - 1)
        slots[key] = slot
        evictIfNeeded()
    }

    /// Adds an adapter that is already loaded (e.g. just validated), without a reference.
    public func insert(_ key: Key, _ adapter: LoRAAdapter) {
        guard slots[key] == nil else { return }
        clock += 1
        slots[key] = Slot(adapter: adapter, references: 0, lastUsed: clock)
        counters.bytes += adapter.byteSize
        evictIfNeeded()
    }

    /// Keeps every version of `name` resident.
    public func pin(_ name: String) { pinned.insert(name) }

    /// Lets `name` be evicted again.
    public func unpin(_ name: String) {
        pinned.remove(name)
        evictIfNeeded()
    }

    /// Drops `key` now unless a request holds it.
    public func remove(_ key: Key) {
        guard let slot = slots[key], slot.references == 0 else { return }
        slots[key] = nil
        counters.bytes -= slot.adapter.byteSize
    }

    /// Whether `name` is pinned.
    public func isPinned(_ name: String) -> Bool { pinned.contains(name) }

    /// Whether `key` is resident.
    public func contains(_ key: Key) -> Bool { slots[key] != nil }

    /// Every resident key, and the pinned names.
    public var residency: (resident: Set<Key>, pinned: Set<String>) { (Set(slots.keys), pinned) }

    private func evictIfNeeded() {
        while counters.bytes > maxBytes {
            let candidates = slots.filter { $0.value.references == 0 && !pinned.contains($0.key.name) }
            guard let victim = candidates.min(by: { $0.value.lastUsed < $1.value.lastUsed }) else { return }
            slots[victim.key] = nil
            counters.bytes -= victim.value.adapter.byteSize
            counters.evictions += 1
        }
    }
}
