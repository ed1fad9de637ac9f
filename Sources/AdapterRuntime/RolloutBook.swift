import AdapterFormats

/// Traffic splits between versions of one name (A/B rollouts): checked against the versions held, written to the
/// store, kept in memory. A value type: the registry actor holds it.
public struct RolloutBook: Sendable {
    private let store: AdapterStore
    /// Splits by adapter name.
    public private(set) var byName: [String: Rollout] = [:]

    /// An empty book over `store`.
    public init(store: AdapterStore) {
        self.store = store
    }

    /// Reads the stored splits (at start).
    mutating func restore() throws(RegistryError) {
        byName = try VersionCatalog.mapped { () throws(StoreError) in try store.rollouts() }
    }

    /// Splits `name`'s traffic between versions held in `catalog` by weight; empty splits end the rollout.
    public mutating func set(name: String, splits: [String: Int], catalog: VersionCatalog) throws(RegistryError) {
        guard catalog.holds(name) else { throw .notLoaded(name: name, version: nil) }
        var rollout: Rollout?
        if !splits.isEmpty {
            if let missing = splits.keys.sorted().first(where: { catalog.entry(name: name, version: $0) == nil }) {
                throw .splitToUnloaded(name: name, version: missing)
            }
            guard let valid = Rollout(name: name, splits: splits) else { throw .invalidSplits }
            rollout = valid
        }
        try VersionCatalog.mapped { () throws(StoreError) in try store.save(rollout: rollout, name: name) }
        CrashPoint.reached(.rolloutSaved)
        byName[name] = rollout
    }

    /// Ends `name`'s rollout because its `canary` broke the guard policy, recording why (the store drops the
    /// canary's session pins in the same transaction). Returns false when `name` had no rollout.
    public mutating func abort(name: String, canary: String, reason: String) throws(RegistryError) -> Bool {
        guard byName[name] != nil else { return false }
        try VersionCatalog.mapped { () throws(StoreError) in try store.endRollout(name: name, canary: canary, reason: reason) }
        CrashPoint.reached(.rollbackWritten)
        byName[name] = nil
        return true
    }
}
