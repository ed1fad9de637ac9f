import AdapterFormats
import Foundation
import InputRouting

/// The versions a worker holds and which one of each name is active: the single owner of "what serves".
///
/// SQLite is the durable copy and decides activation inside its transactions (a name's first version on
/// registration, the newest remaining one when the active version is removed), so a kill never leaves a name with
/// none; every such change goes through the catalog, which takes the record the store returns as the new truth in
/// memory. Nothing else writes activation to the store or to memory. A value type: the registry actor holds it.
public struct VersionCatalog: Sendable {
    /// One usable adapter or router version (an adapter's weights live in the cache, loaded on demand).
    public struct Entry: Sendable {
        public let record: AdapterVersionRecord
        public let path: String
        /// The parsed router, for router versions (a few kilobytes: all stay in memory).
        public let router: InputRouter?

        /// An entry for `record`, whose files are at `path`.
        public init(record: AdapterVersionRecord, path: String, router: InputRouter? = nil) {
            self.record = record
            self.path = path
            self.router = router
        }

        public var name: String { record.name }
        public var version: String { record.version }
        public var sha256: String { record.sha256 }
        public var key: AdapterCache.Key { AdapterCache.Key(name: record.name, version: record.version) }
        public var kind: ArtifactKind { record.kind }

        /// The same version in `state` (as the store just wrote it).
        func with(_ record: AdapterVersionRecord) -> Entry { Entry(record: record, path: path, router: router) }
    }

    private let store: AdapterStore
    /// Most versions (adapters and routers, every name) held at once; past it loads and pushes get
    /// RESOURCE_EXHAUSTED until some are unloaded, so a control client cannot fill memory and disk with versions.
    public let maxVersions: Int
    private var entries: [String: [String: Entry]] = [:]

    /// An empty catalog over `store`, holding at most `maxVersions` versions.
    public init(store: AdapterStore, maxVersions: Int) {
        self.store = store
        self.maxVersions = max(1, maxVersions)
    }

    // MARK: Reading

    /// The registered (name, version), if any.
    public func entry(name: String, version: String) -> Entry? { entries[name]?[version] }

    /// The active version of `name`, if any (a name has a handful of versions).
    public func activeVersion(of name: String) -> String? {
        entries[name]?.first { $0.value.record.state == .active }?.key
    }

    /// The entry for (name, version), or the active version when `version` is empty.
    public func resolve(name: String, version: String) throws(RegistryError) -> Entry {
        guard let versions = entries[name] else { throw RegistryError.notLoaded(name: name, version: nil) }
        let wanted = version.isEmpty ? (activeVersion(of: name) ?? "") : version
        guard let entry = versions[wanted] else { throw RegistryError.notLoaded(name: name, version: version) }
        return entry
    }

    /// Whether any version of `name` is held.
    public func holds(_ name: String) -> Bool { entries[name] != nil }

    /// The kind of the versions `name` holds; nil when none is held.
    public func kind(of name: String) -> ArtifactKind? { entries[name]?.values.first?.kind }

    /// Number of versions held.
    public var count: Int { entries.values.reduce(0) { $0 + $1.count } }

    /// Every version held, sorted by name and version.
    public func list() -> [Entry] {
        entries.values.flatMap(\.values).sorted { ($0.name, $0.version) < ($1.name, $1.version) }
    }

    /// Throws `RegistryError.limit` when (name, version) is not held and the catalog is full.
    public func checkRoom(name: String, version: String) throws(RegistryError) {
        if entry(name: name, version: version) == nil, count >= maxVersions {
            throw RegistryError.limit(what: "adapter versions", limit: maxVersions)
        }
    }

    /// Throws `RegistryError.kindTaken` when `name` holds versions of another kind than `kind`: every Infer naming
    /// it, and every route to it, expects one kind.
    public func checkKind(_ kind: ArtifactKind, name: String) throws(RegistryError) {
        if let held = self.kind(of: name), held != kind { throw .kindTaken(name: name, holds: held, offered: kind) }
    }

    // MARK: Changing

    /// Holds a version the store has registered (`entry.record` as the store returned it: active when it is its
    /// name's first). A version of the same contents already held is returned instead; other contents under the
    /// same (name, version), another kind under the name or a full catalog throw, and the caller undoes the
    /// registration.
    public mutating func admit(_ entry: Entry) throws(RegistryError) -> Entry {
        if let existing = self.entry(name: entry.name, version: entry.version) {
            guard existing.sha256 == entry.sha256 else {
                throw .store(.conflict(name: entry.name, version: entry.version, existingSHA256: existing.sha256))
            }
            return existing
        }
        try checkKind(entry.kind, name: entry.name)
        guard count < maxVersions else { throw .limit(what: "adapter versions", limit: maxVersions) }
        entries[entry.name, default: [:]][entry.version] = entry
        return entry
    }

    /// Holds a version restored from the store at start (no checks: the store is the record of what was held).
    mutating func restore(_ entry: Entry) {
        entries[entry.name, default: [:]][entry.version] = entry
    }

    /// Makes (name, version) active, in the store and then here; requests already running finish on the version
    /// they started with.
    public mutating func activate(name: String, version: String, actor: String, reason: String) throws(RegistryError) -> Entry {
        guard entry(name: name, version: version) != nil else { throw .notLoaded(name: name, version: version) }
        let record = try Self.mapped { () throws(StoreError) in try store.activate(name: name, version: version, actor: actor, reason: reason) }
        CrashPoint.reached(.activationWritten)
        return markActive(record)
    }

    /// Returns `name` to its previously active version.
    public mutating func rollback(name: String, actor: String, reason: String) throws(RegistryError) -> Entry {
        let record = try Self.mapped { () throws(StoreError) in try store.rollback(name: name, actor: actor, reason: reason) }
        guard entry(name: name, version: record.version) != nil else { throw .notLoaded(name: name, version: record.version) }
        return markActive(record)
    }

    /// Removes (name, version) from the store and here; when it was active, the newest remaining version becomes
    /// active (the store promotes it in the same transaction). Returns the removed entry.
    public mutating func remove(name: String, version: String, actor: String) throws(RegistryError) -> Entry {
        guard let removed = entry(name: name, version: version) else { throw .notLoaded(name: name, version: version) }
        let promoted = try Self.mapped { () throws(StoreError) in try store.remove(name: name, version: version, actor: actor) }
        entries[name]?[version] = nil
        if let promoted, entry(name: name, version: promoted.version) != nil { _ = markActive(promoted) }
        if entries[name]?.isEmpty ?? false { entries[name] = nil }
        return removed
    }

    /// Holds `record` (as the store returned it, now active) and retires the version it replaced, as the store did
    /// in the same transaction.
    private mutating func markActive(_ record: AdapterVersionRecord) -> Entry {
        var versions = entries[record.name] ?? [:]
        for (version, held) in versions where held.record.state == .active && version != record.version {
            var retired = held.record
            retired.state = .retired
            versions[version] = held.with(retired)
        }
        let entry = versions[record.version]?.with(record) ?? Entry(record: record, path: "")
        versions[record.version] = entry
        entries[record.name] = versions
        return entry
    }

    /// Runs a store operation, wrapping its errors.
    static func mapped<T>(_ body: () throws(StoreError) -> T) throws(RegistryError) -> T {
        do {
            return try body()
        } catch {
            throw .store(error)
        }
    }
}
