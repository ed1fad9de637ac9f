import AdapterEngine
import AdapterFormats
import Foundation
import InputRouting

/// The adapters this worker serves: durable state in the `AdapterStore` (files and SQLite registry), validated
/// `LoRAAdapter`s in memory, and which version of each name is active.
public actor AdapterRegistry {
    /// One usable adapter or router version.
    public typealias Entry = VersionCatalog.Entry

    /// How `resolve` chose a version.
    public enum Resolution: Sendable {
        /// The session's pin (its first request's version).
        case pinned
        /// A traffic split.
        case rollout
        /// The active version.
        case active
    }

    private let store: AdapterStore
    /// Adapter weights held ready under the byte budget.
    public nonisolated let cache: AdapterCache
    private let baseFingerprint: String
    /// The versions held and which is active (the single owner of activation).
    private var catalog: VersionCatalog
    /// Routes, compiled.
    private var routeBook: RouteBook
    /// Traffic splits.
    private var rolloutBook: RolloutBook
    /// Session pins, authoritative in memory; SQLite holds the durable copy, written behind (`flushPins`).
    private var pins: SessionPins
    private var flushScheduled = false
    /// A router's earlier choice per (session, route), so a session keeps its adapter (memory only, bounded at
    /// 100,000).
    private var routerChoices = RouterChoices(limit: 100_000)
    /// Imports, validates, smoke-tests and registers new versions, off this actor.
    private nonisolated let loader: AdapterLoader
    /// Where every change to what is held or served is reported, as it is made (see `LifecycleEvent`).
    private nonisolated let report: @Sendable (LifecycleEvent) -> Void

    /// Routes, compiled, highest priority first.
    public var routeTable: RouteTable { routeBook.table }
    /// Routes, highest priority first.
    public var routes: [RouteRecord] { routeBook.table.routes }
    /// Traffic splits by adapter name.
    public var rollouts: [String: Rollout] { rolloutBook.byName }

    /// Opens the registry over `store` for `model`, whose `model.safetensors` hashes to `baseFingerprint`; adapters
    /// declaring a hub base model other than `baseModelNames` are refused.
    /// At most `maxPins` session pins are kept (in memory and in SQLite); beyond it the soonest to expire go first.
    /// At most `maxVersions` versions are registered at once; further loads get `RegistryError.limit`.
    /// `waitForServingGap` blocks a background thread while requests are being served (see `BatchExecutor`).
    /// `events` receives every change to what is held or served, as it is made.
    public init(
        engine: InferenceEngine, store: AdapterStore, baseFingerprint: String, cacheBytes: Int, baseModelNames: [String] = [],
        maxPins: Int = 100_000, maxVersions: Int = 10_000, waitForServingGap: @escaping @Sendable () -> Void = {},
        events: @escaping @Sendable (LifecycleEvent) -> Void = { _ in }
    ) {
        report = events
        catalog = VersionCatalog(store: store, maxVersions: maxVersions)
        routeBook = RouteBook(store: store)
        rolloutBook = RolloutBook(store: store)
        pins = SessionPins(maxPins: maxPins)
        let model = engine.model
        self.store = store
        self.baseFingerprint = baseFingerprint
        loader = AdapterLoader(
            store: store, engine: engine, baseFingerprint: baseFingerprint, baseModelNames: baseModelNames,
            // The wait blocks a background thread: its yield timer pauses meanwhile.
            waitForServingGap: { BackgroundThread.withoutYieldTimer(waitForServingGap) })
        cache = AdapterCache(maxBytes: cacheBytes) { [store, model] key in
            let record = try store.versions(name: key.name).first { $0.version == key.version }
            guard let record else { throw StoreError.notFound(name: key.name, version: key.version) }
            return try LoRAAdapter(directory: store.directory(forSHA256: record.sha256), model: model, name: key.name)
        }
    }

    /// What `restore` found and repaired.
    public struct RestoreReport: Sendable {
        /// Versions that could not be restored, with why.
        public var skipped: [(name: String, version: String, reason: String)] = []
        /// Versions made active because no version of their name was (a registry from before registration and
        /// first activation shared a transaction).
        public var activated: [AdapterVersionRecord] = []
        /// Directories under `{data}/adapters` that a killed load left and nothing referred to, removed.
        public var removedFiles: [String] = []
    }

    /// Loads every registered, non-failed version built for this base model from the store (after a restart),
    /// after repairing what a killed worker can leave behind.
    public func restore() throws(RegistryError) -> RestoreReport {
        var report = RestoreReport()
        report.activated = try mapped { () throws(StoreError) in try store.activateOrphanedNames(actor: "restore") }
        report.removedFiles = try mapped { () throws(StoreError) in try store.removeUnreferencedFiles() }
        try routeBook.restore()
        try rolloutBook.restore()
        try mapped { () throws(StoreError) in _ = try store.pruneSessions() }
        if let cutoff = pins.restore(try mapped({ () throws(StoreError) in try store.sessions() })) { prunePins(through: cutoff) }
        for record in try mapped({ () throws(StoreError) in try store.versions() }) where record.state != .failed {
            guard record.baseFingerprint == baseFingerprint else {
                report.skipped.append((record.name, record.version, "built for another base model"))
                continue
            }
            let path = store.directory(forSHA256: record.sha256)
            guard record.kind.requiredFiles.allSatisfy({ FileManager.default.fileExists(atPath: path + "/" + $0) }) else {
                report.skipped.append((record.name, record.version, "its files are missing from \(path)"))
                continue
            }
            var router: InputRouter?
            if record.kind == .router {
                do {
                    // The same checks a load makes: a router registered before a check was added is skipped, not served.
                    router = try loader.validateRouter(name: record.name, version: record.version, path: path)
                } catch {
                    report.skipped.append((record.name, record.version, "\(error)"))
                    continue
                }
            }
            // Weights load on first use, under the cache's budget.
            catalog.restore(Entry(record: record, path: path, router: router))
        }
        return report
    }

    /// Stages a PEFT adapter or input-router directory as (name, version): `AdapterLoader` copies it into the store,
    /// validates it against the base model, runs a smoke inference and registers it; then it becomes usable here.
    /// The first version of a name becomes active at once; later ones wait for `activate`. A refused adapter is
    /// recorded as failed and changes nothing that serves. `source` is what the audit trail records as its origin
    /// (the path by default); `declaredBase` is the base model fingerprint the sender says the adapter was trained
    /// on (empty: not declared).
    ///
    /// Hashing, copying, parsing, validation and the smoke inference run before the registry is touched (this
    /// method is not isolated to it), so requests resolving adapters never queue behind a load.
    @discardableResult
    public nonisolated func load(name: String, version: String, path: String, actor: String, source: String? = nil, declaredBase: String = "") async throws(RegistryError) -> Entry {
        do {
            let entry = try await stageAndCommit(name: name, version: version, path: path, actor: actor, source: source ?? path, declaredBase: declaredBase)
            report(LifecycleEvent(.loaded, name: name, version: version, actor: actor, reason: "\(source ?? path); state \(entry.record.state.rawValue)"))
            return entry
        } catch {
            if error.refusesAdapter { report(LifecycleEvent(.refused, name: name, version: version, actor: actor, reason: error.description)) }
            throw error
        }
    }

    /// `load` without its report.
    private nonisolated func stageAndCommit(name: String, version: String, path: String, actor: String, source: String, declaredBase: String) async throws(RegistryError) -> Entry {
        try mapped { () throws(StoreError) in
            try AdapterName.check(name, field: "name")
            try AdapterName.check(version, field: "version")
        }
        try loader.checkDeclaredBase(declaredBase, name: name, version: version, actor: actor)
        // Refused before any hashing or copying when the worker already holds as many versions as it keeps.
        try await checkRoom(name: name, version: version)
        let sha256 = try await loader.importFiles(name: name, version: version, path: path)
        CrashPoint.reached(.loadImported)
        if let existing = await catalog.entry(name: name, version: version) {
            guard existing.sha256 == sha256 else {
                throw RegistryError.store(.conflict(name: name, version: version, existingSHA256: existing.sha256))
            }
            return existing
        }
        let kind = ArtifactKind.of(directory: store.directory(forSHA256: sha256))
        do {
            try await checkKind(kind, name: name)
        } catch {
            try? store.removeFilesIfUnused(sha256: sha256)
            throw error
        }
        let staged = try await loader.stage(name: name, version: version, sha256: sha256, kind: kind, actor: actor, source: source)
        return try await commit(Entry(record: staged.record, path: staged.path, router: staged.router), adapter: staged.adapter, actor: actor)
    }

    /// Throws `RegistryError.limit` when (name, version) is not registered and the registry holds as many versions
    /// as it keeps: a push checks this at its begin, before any byte travels.
    public func checkRoom(name: String, version: String) throws(RegistryError) {
        try catalog.checkRoom(name: name, version: version)
    }

    /// Throws `RegistryError.kindTaken` when `name` holds versions of another kind than `kind`.
    public func checkKind(_ kind: ArtifactKind, name: String) throws(RegistryError) {
        try catalog.checkKind(kind, name: name)
    }

    /// Appends an entry to `name`'s audit trail (what a training reports, say).
    public nonisolated func record(_ entry: HistoryRecord) throws(RegistryError) {
        try mapped { () throws(StoreError) in try store.record(entry) }
    }

    /// Stores a labelled text for `name` within `limits`; returns how many are stored for it.
    public nonisolated func addFeedback(name: String, text: String, label: String, limits: FeedbackLimits) throws(RegistryError) -> Int {
        try mapped { () throws(StoreError) in try store.addFeedback(name: name, text: text, label: label, limits: limits) }
    }

    /// The labelled texts stored for `name`, oldest first.
    public nonisolated func feedback(name: String) throws(RegistryError) -> [FeedbackRecord] {
        try mapped { () throws(StoreError) in try store.feedback(name: name) }
    }

    /// The directory of the worker's data.
    public nonisolated var dataDirectory: String { store.dataDirectory }

    /// Makes a registered version usable: the short, isolated part of `load` (SQLite was written before, off the
    /// actor; a name's first version came back from it active). A version the catalog refuses (another kind, no
    /// room: loads that passed the early checks together may not all fit) is removed from the store again.
    private func commit(_ staged: Entry, adapter: LoRAAdapter?, actor: String) async throws(RegistryError) -> Entry {
        // Another load of the same version may have finished while this one validated: it is returned as it is.
        if let existing = catalog.entry(name: staged.name, version: staged.version), existing.sha256 == staged.sha256 { return existing }
        let entry: Entry
        do {
            entry = try catalog.admit(staged)
        } catch {
            if case .store(.conflict) = error { throw error }
            _ = try? store.remove(name: staged.name, version: staged.version, actor: actor)
            try? store.removeFilesIfUnused(sha256: staged.sha256)
            throw error
        }
        if let adapter { await cache.insert(entry.key, adapter) }
        return entry
    }

    /// Makes (name, version) active atomically: requests already running finish on the version they started with.
    @discardableResult
    public func activate(name: String, version: String, actor: String, reason: String) throws(RegistryError) -> Entry {
        let entry = try catalog.activate(name: name, version: version, actor: actor, reason: reason)
        report(LifecycleEvent(.activated, name: name, version: entry.version, actor: actor, reason: reason))
        return entry
    }

    /// Returns `name` to its previously active version.
    @discardableResult
    public func rollback(name: String, actor: String, reason: String) throws(RegistryError) -> Entry {
        let entry = try catalog.rollback(name: name, actor: actor, reason: reason)
        report(LifecycleEvent(.rolledBack, name: name, version: entry.version, actor: actor, reason: reason))
        return entry
    }

    /// Unloads one version, or every version of `name` when `version` is empty. When the active version goes, the
    /// newest remaining one becomes active.
    public func unload(name: String, version: String, actor: String) async throws(RegistryError) {
        guard catalog.holds(name) else { throw RegistryError.notLoaded(name: name, version: nil) }
        let doomed = version.isEmpty ? catalog.list().filter { $0.name == name }.map(\.version) : [version]
        guard doomed.allSatisfy({ catalog.entry(name: name, version: $0) != nil }) else { throw RegistryError.notLoaded(name: name, version: version) }
        for item in doomed {
            let removed = try catalog.remove(name: name, version: item, actor: actor)
            report(LifecycleEvent(.unloaded, name: name, version: item, actor: actor, reason: ""))
            await cache.remove(removed.key)
        }
    }

    /// The entry for (name, version), or the active version when `version` is empty.
    public func resolve(name: String, version: String) throws(RegistryError) -> Entry {
        try catalog.resolve(name: name, version: version)
    }

    /// Resolves `name` for a request: a session's pinned version while the pin lasts (and the version is loaded);
    /// else the rollout's version for the session (or, without one, for `stickyKey`, e.g. the sensor id); else the
    /// active version. A session is then pinned to what it got, for `ttl`.
    public func resolve(name: String, session: String, stickyKey: String, ttl: Duration) throws(RegistryError) -> Entry {
        try resolveReporting(name: name, session: session, stickyKey: stickyKey, ttl: ttl).entry
    }

    /// `resolve(name:session:stickyKey:ttl:)`, also saying how the version was chosen.
    public func resolveReporting(name: String, session: String, stickyKey: String, ttl: Duration) throws(RegistryError) -> (entry: Entry, resolution: Resolution) {
        let now = Date()
        if !session.isEmpty, let pinned = pins.version(session: session, adapter: name, now: now), let entry = catalog.entry(name: name, version: pinned) {
            return (entry, .pinned)
        }
        var entry = try catalog.resolve(name: name, version: "")
        var resolution = Resolution.active
        let key = session.isEmpty ? stickyKey : session
        if let rollout = rolloutBook.byName[name], !key.isEmpty, let chosen = catalog.entry(name: name, version: rollout.version(for: key)) {
            resolution = chosen.version == entry.version ? .active : .rollout
            entry = chosen
        }
        if !session.isEmpty {
            let expiresAt = now.addingTimeInterval(Double(ttl.components.seconds))
            if let cutoff = pins.pin(session: session, adapter: name, version: entry.version, expiresAt: expiresAt, now: now) {
                prunePins(through: cutoff)
            }
            schedulePinFlush()
        }
        return (entry, resolution)
    }

    /// Removes from SQLite the pins `SessionPins` dropped past its bound (a restart must not bring them back).
    private func prunePins(through cutoff: Date) {
        _ = try? store.pruneSessions(now: cutoff.addingTimeInterval(0.001))
    }

    /// Session pins held in memory.
    public var pinCount: Int { pins.count }

    /// The active version of the input router `name`, parsed.
    public func router(named name: String) throws(RegistryError) -> (entry: Entry, router: InputRouter) {
        let entry = try catalog.resolve(name: name, version: "")
        guard entry.kind == .router, let router = entry.router else { throw .notKind(name: name, kind: .router) }
        return (entry, router)
    }

    /// The adapter a router chose earlier for `session` under route `route`, while it lasts.
    public func sessionChoice(session: String, route: String) -> String? {
        routerChoices.choice(session: session, route: route)
    }

    /// Remembers a router's choice for `session` under `route` for `ttl`.
    public func rememberChoice(_ adapter: String, session: String, route: String, ttl: Duration) {
        routerChoices.remember(adapter, session: session, route: route, expiresAt: Date().addingTimeInterval(Double(ttl.components.seconds)))
    }

    /// Writes the pins made since the last flush to SQLite in one transaction. New pins are written behind, at most
    /// `pinFlushDelay` after they are made, so a request never waits for a disk write; a graceful stop flushes.
    public func flushPins() {
        flushScheduled = false
        guard pins.hasUnsaved else { return }
        let batch = pins.takeUnsaved()
        do {
            try store.pin(batch)
        } catch {
            // Keep them for the next attempt; newer pins made meanwhile win.
            pins.returnUnsaved(batch)
            schedulePinFlush()
        }
    }

    /// How long a new pin may stay in memory only.
    static let pinFlushDelay = Duration.milliseconds(20)

    private func schedulePinFlush() {
        guard !flushScheduled else { return }
        flushScheduled = true
        Task {
            try? await Task.sleep(for: Self.pinFlushDelay)
            self.flushPins()
        }
    }

    /// Splits `name`'s traffic between loaded versions by weight; empty splits end the rollout.
    public func setRollout(name: String, splits: [String: Int]) throws(RegistryError) {
        try rolloutBook.set(name: name, splits: splits, catalog: catalog)
    }

    /// Ends `name`'s rollout because a canary broke the guard policy, and records why. Sessions pinned to the
    /// canary are released too: a version judged bad should not keep serving them until their pins expire.
    public func abortRollout(name: String, canary: String, reason: String) throws(RegistryError) {
        if try rolloutBook.abort(name: name, canary: canary, reason: reason) {
            pins.release(adapter: name, version: canary)
            report(LifecycleEvent(.rolledBack, name: name, version: canary, actor: "guard", reason: reason))
        }
    }

    /// Removes every pin of `session`; returns how many were live.
    public func clear(session: String) throws(RegistryError) -> Int {
        // Memory holds every live pin (restored at start, added since), so it says how many there were.
        routerChoices.forget(session: session)
        let live = pins.remove(session: session)
        try mapped { () throws(StoreError) in _ = try store.clear(session: session) }
        return live
    }

    /// Creates or replaces a route.
    public func setRoute(_ route: RouteRecord) throws(RegistryError) {
        try routeBook.set(route, catalog: catalog)
    }

    /// Most routes a worker keeps; more are refused (RESOURCE_EXHAUSTED).
    public static var maxRoutes: Int { RouteBook.maxRoutes }

    /// Deletes a route.
    public func deleteRoute(name: String) throws(RegistryError) {
        try routeBook.delete(name: name)
    }

    /// Every loaded version, sorted by name and version.
    public func list() -> [Entry] { catalog.list() }

    /// The audit trail of `name`.
    public func history(name: String) throws(RegistryError) -> [HistoryRecord] {
        try mapped { () throws(StoreError) in try store.history(name: name) }
    }

    /// Whether any version of `name` is loaded.
    public func isLoaded(_ name: String) -> Bool { catalog.holds(name) }

    /// The kind of the versions `name` holds; nil when none is loaded.
    public func kind(of name: String) -> ArtifactKind? { catalog.kind(of: name) }

    /// Number of loaded versions.
    public var count: Int { catalog.count }

    /// Runs a store operation, wrapping its errors.
    private nonisolated func mapped<T>(_ body: () throws(StoreError) -> T) throws(RegistryError) -> T {
        try VersionCatalog.mapped(body)
    }
}
