import AdapterFormats
import AdapterRuntime
import Foundation
import Testing

@Suite("VersionCatalog")
struct VersionCatalogTests {
    /// A catalog over a fresh store, holding the versions registered through `register`.
    struct Fixture {
        let store: AdapterStore
        var catalog: VersionCatalog

        init(maxVersions: Int = 10) throws {
            store = try AdapterStoreTests.store()
            catalog = VersionCatalog(store: store, maxVersions: maxVersions)
        }

        /// Registers (name, version) in the store, as a load does, and admits what the store returned.
        @discardableResult
        mutating func register(_ name: String, _ version: String, kind: ArtifactKind = .adapter) throws -> VersionCatalog.Entry {
            var record = AdapterStoreTests.record(name, version, sha256: "sha-\(name)-\(version)")
            record.kind = kind
            let registered = try store.register(record, actor: "test")
            return try catalog.admit(VersionCatalog.Entry(record: registered, path: "/nowhere"))
        }

        /// "version=state" of every version of `name`, in memory and in SQLite.
        func states(_ name: String) throws -> (memory: [String], stored: [String]) {
            (catalog.list().filter { $0.name == name }.map { "\($0.version)=\($0.record.state.rawValue)" },
             try store.versions(name: name).map { "\($0.version)=\($0.state.rawValue)" })
        }
    }

    @Test("a name's first version serves at once; later ones wait for activation, which retires the one before")
    func firstVersionActive() throws {
        var fixture = try Fixture()
        #expect(try fixture.register("intent", "v1").record.state == .active)
        #expect(try fixture.register("intent", "v2").record.state == .staged)
        #expect(fixture.catalog.activeVersion(of: "intent") == "v1")
        _ = try fixture.catalog.activate(name: "intent", version: "v2", actor: "test", reason: "newer")
        let states = try fixture.states("intent")
        #expect(states.memory == ["v1=retired", "v2=active"])
        #expect(states.memory == states.stored)
        #expect(try fixture.catalog.resolve(name: "intent", version: "").version == "v2")
    }

    @Test("rollback returns to the version active before, in memory as in SQLite")
    func rollbackAgrees() throws {
        var fixture = try Fixture()
        try fixture.register("intent", "v1")
        try fixture.register("intent", "v2")
        _ = try fixture.catalog.activate(name: "intent", version: "v2", actor: "test", reason: "newer")
        #expect(try fixture.catalog.rollback(name: "intent", actor: "test", reason: "worse").version == "v1")
        let states = try fixture.states("intent")
        #expect(states.memory == states.stored)
        #expect(fixture.catalog.activeVersion(of: "intent") == "v1")
    }

    @Test("removing the active version promotes the newest remaining one; removing the last forgets the name")
    func removePromotes() throws {
        var fixture = try Fixture()
        try fixture.register("intent", "v1")
        try fixture.register("intent", "v2")
        try fixture.register("intent", "v3")
        _ = try fixture.catalog.remove(name: "intent", version: "v1", actor: "test")
        let states = try fixture.states("intent")
        #expect(states.memory == states.stored)
        #expect(fixture.catalog.activeVersion(of: "intent") == "v3")
        _ = try fixture.catalog.remove(name: "intent", version: "v2", actor: "test")
        _ = try fixture.catalog.remove(name: "intent", version: "v3", actor: "test")
        #expect(!fixture.catalog.holds("intent"))
        #expect(throws: RegistryError.notLoaded(name: "intent", version: nil)) { try fixture.catalog.resolve(name: "intent", version: "") }
    }

    @Test("admission refuses another kind under a name, other contents under a version, and a full catalog")
    func admissionRules() throws {
        var fixture = try Fixture(maxVersions: 2)
        try fixture.register("intent", "v1")
        #expect(throws: RegistryError.kindTaken(name: "intent", holds: .adapter, offered: .router)) {
            try fixture.catalog.checkKind(.router, name: "intent")
        }
        var other = AdapterStoreTests.record("intent", "v1", sha256: "different")
        other.state = .staged
        #expect(throws: RegistryError.store(.conflict(name: "intent", version: "v1", existingSHA256: "sha-intent-v1"))) {
            try fixture.catalog.admit(VersionCatalog.Entry(record: other, path: "/nowhere"))
        }
        try fixture.register("severity", "v1")
        #expect(throws: RegistryError.limit(what: "adapter versions", limit: 2)) { try fixture.catalog.checkRoom(name: "chat", version: "v1") }
        // A version already held is never "no room".
        try fixture.catalog.checkRoom(name: "intent", version: "v1")
        #expect(fixture.catalog.count == 2)
    }

    @Test("activating a version that is not held changes nothing")
    func activateUnknown() throws {
        var fixture = try Fixture()
        try fixture.register("intent", "v1")
        #expect(throws: RegistryError.notLoaded(name: "intent", version: "v9")) {
            try fixture.catalog.activate(name: "intent", version: "v9", actor: "test", reason: "")
        }
        #expect(try fixture.states("intent").stored == ["v1=active"])
    }
}

@Suite("RouteBook")
struct RouteBookTests {
    @Test("a route must name held versions of the right kind, a valid filter and a confidence in [0, 1]")
    func validation() throws {
        var fixture = try VersionCatalogTests.Fixture()
        try fixture.register("intent", "v1")
        try fixture.register("hub", "v1", kind: .router)
        var book = RouteBook(store: fixture.store)
        func route(_ name: String, topic: String = "", adapter: String = "", router: String = "", confidence: Double = 0) -> RouteRecord {
            RouteRecord(name: name, topic: topic, sensorType: "", metadata: [:], adapter: adapter, priority: 0, router: router, minConfidence: confidence)
        }
        #expect(throws: RegistryError.unknownReference(kind: "adapter", name: "missing")) { try book.set(route("r", adapter: "missing"), catalog: fixture.catalog) }
        #expect(throws: RegistryError.notKind(name: "hub", kind: .adapter)) { try book.set(route("r", adapter: "hub"), catalog: fixture.catalog) }
        #expect(throws: RegistryError.notKind(name: "intent", kind: .router)) { try book.set(route("r", router: "intent"), catalog: fixture.catalog) }
        #expect(throws: RegistryError.invalidConfidence(1.5)) { try book.set(route("r", adapter: "intent", confidence: 1.5), catalog: fixture.catalog) }
        #expect(throws: RegistryError.self) { try book.set(route("r", topic: "a/#/b", adapter: "intent"), catalog: fixture.catalog) }
        #expect(book.table.routes.isEmpty)
        #expect(try fixture.store.routes().isEmpty)
        try book.set(route("voice", adapter: "intent", router: "hub"), catalog: fixture.catalog)
        #expect(try fixture.store.routes().map(\.name) == ["voice"])
    }

    @Test("routes are kept in the store's order, priority first, and a deleted route is gone from both")
    func orderAndDelete() throws {
        var fixture = try VersionCatalogTests.Fixture()
        try fixture.register("intent", "v1")
        var book = RouteBook(store: fixture.store)
        for (name, priority) in [("b", 1), ("a", 1), ("z", 5), ("B", 1)] {
            try book.set(RouteRecord(name: name, topic: "", sensorType: "", metadata: [:], adapter: "intent", priority: priority), catalog: fixture.catalog)
        }
        #expect(book.table.routes.map(\.name) == ["z", "B", "a", "b"])
        #expect(try fixture.store.routes().map(\.name) == book.table.routes.map(\.name))
        try book.delete(name: "a")
        #expect(book.table.routes.map(\.name) == ["z", "B", "b"])
        #expect(try fixture.store.routes().map(\.name) == ["z", "B", "b"])
    }
}

@Suite("RolloutBook")
struct RolloutBookTests {
    @Test("a split names held versions with valid weights; an empty split ends it; both survive a reread")
    func splits() throws {
        var fixture = try VersionCatalogTests.Fixture()
        try fixture.register("intent", "v1")
        try fixture.register("intent", "v2")
        var book = RolloutBook(store: fixture.store)
        #expect(throws: RegistryError.splitToUnloaded(name: "intent", version: "v9")) {
            try book.set(name: "intent", splits: ["v1": 50, "v9": 50], catalog: fixture.catalog)
        }
        #expect(throws: RegistryError.invalidSplits) { try book.set(name: "intent", splits: ["v1": 0, "v2": 0], catalog: fixture.catalog) }
        #expect(throws: RegistryError.notLoaded(name: "chat", version: nil)) { try book.set(name: "chat", splits: ["v1": 1], catalog: fixture.catalog) }
        try book.set(name: "intent", splits: ["v1": 90, "v2": 10], catalog: fixture.catalog)
        #expect(try fixture.store.rollouts()["intent"] == book.byName["intent"])
        #expect(book.byName["intent"]?.splits.map(\.weight) == [90, 10])
        try book.set(name: "intent", splits: [:], catalog: fixture.catalog)
        #expect(book.byName["intent"] == nil)
        #expect(try fixture.store.rollouts().isEmpty)
    }

    @Test("aborting records the canary's rollback in the audit trail; aborting no rollout does nothing")
    func abort() throws {
        var fixture = try VersionCatalogTests.Fixture()
        try fixture.register("intent", "v1")
        try fixture.register("intent", "v2")
        var book = RolloutBook(store: fixture.store)
        #expect(try book.abort(name: "intent", canary: "v2", reason: "errors") == false)
        try book.set(name: "intent", splits: ["v1": 50, "v2": 50], catalog: fixture.catalog)
        #expect(try book.abort(name: "intent", canary: "v2", reason: "errors"))
        #expect(book.byName.isEmpty)
        #expect(try fixture.store.rollouts().isEmpty)
        #expect(try fixture.store.history(name: "intent").last.map { "\($0.version) \($0.action) \($0.reason)" } == "v2 rolled back errors")
    }
}
