import Synchronization

/// The memory an engine may spend on adapters merged into private copies of the layers they change
/// (`InferenceEngine.prepareMerged`): taken when an adapter is merged, given back when that adapter is released.
public final class MergeBudget: Sendable {
    /// Bytes the merged layers may hold in all.
    public let limit: Int
    private let used = Mutex(0)

    /// A budget of `limit` bytes.
    public init(limit: Int) {
        self.limit = limit
    }

    /// Bytes merged layers hold now.
    public var bytes: Int { used.withLock { $0 } }

    /// Takes `bytes` when they fit in what is left; false (taking nothing) when they do not.
    func reserve(_ bytes: Int) -> Bool {
        used.withLock { used in
            guard used + bytes <= limit else { return false }
            used += bytes
            return true
        }
    }

    /// Gives back `bytes` taken by `reserve`.
    func release(_ bytes: Int) {
        used.withLock { $0 -= bytes }
    }
}
