/// A weighted traffic split between versions of one adapter name.
///
/// Assignment hashes (name, key) with FNV-1a, so every worker of a pool sends the same session or sensor to the same
/// version without sharing any state, and a key never flips while the split is unchanged.
public struct Rollout: Sendable, Equatable {
    public let name: String
    /// (version, weight), sorted by version so the bucket layout does not depend on input order.
    public let splits: [(version: String, weight: Int)]

    public static func == (lhs: Rollout, rhs: Rollout) -> Bool {
        lhs.name == rhs.name && lhs.splits.elementsEqual(rhs.splits) { $0.version == $1.version && $0.weight == $1.weight }
    }

    /// A split; weights must be non-negative and sum to more than zero.
    public init?(name: String, splits: [String: Int]) {
        let sorted = splits.sorted { $0.key < $1.key }.map { (version: $0.key, weight: $0.value) }
        guard !sorted.isEmpty, sorted.allSatisfy({ $0.weight >= 0 }), sorted.reduce(0, { $0 + $1.weight }) > 0 else { return nil }
        self.name = name
        self.splits = sorted
    }

    /// The version for `key` (a session or sensor id).
    public func version(for key: String) -> String {
        let total = splits.reduce(0) { $0 + $1.weight }
        var bucket = Int(Self.fnv1a(name + "\u{0}" + key) % UInt64(total))
        for split in splits {
            if bucket < split.weight { return split.version }
            bucket -= split.weight
        }
        return splits[splits.count - 1].version
    }

    /// 64-bit FNV-1a over UTF-8: stable across processes and platforms, unlike Swift's seeded `Hasher`.
    static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf29ce484222325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100000001b3
        }
        return hash
    }
}
