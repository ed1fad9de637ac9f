import AdapterEngine

/// Blends built for requests, by their parts (name, version and weight of each), so requests naming the same blend
/// share one adapter: one group of rows in a batch, and no rebuilding. Bounded: the least recently used blend goes
/// first. Building happens outside this actor (it copies weights); only the lookup and the insert are isolated.
public actor BlendCache {
    private let limit: Int
    private var blends: [String: LoRAAdapter] = [:]
    private var recent: [String] = []

    /// A cache of at most `limit` blends.
    public init(limit: Int = 64) {
        self.limit = max(1, limit)
    }

    /// The blend built for `key`, if it is still held.
    public func blend(for key: String) -> LoRAAdapter? {
        guard let blend = blends[key] else { return nil }
        touch(key)
        return blend
    }

    /// Holds `blend` under `key` and returns the one held: another request's, when it built the same blend first.
    public func insert(_ blend: LoRAAdapter, for key: String) -> LoRAAdapter {
        if let held = blends[key] {
            touch(key)
            return held
        }
        blends[key] = blend
        recent.append(key)
        if recent.count > limit { blends[recent.removeFirst()] = nil }
        return blend
    }

    /// Blends held.
    public var count: Int { blends.count }

    private func touch(_ key: String) {
        if let index = recent.firstIndex(of: key) { recent.remove(at: index) }
        recent.append(key)
    }
}
