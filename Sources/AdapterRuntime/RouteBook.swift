import AdapterFormats

/// The worker's routes: validated against the versions held, written to the store, and kept compiled in memory
/// (SQLite's copy is read only at start). A value type: the registry actor holds it.
public struct RouteBook: Sendable {
    /// Most routes a worker keeps; more are refused (RESOURCE_EXHAUSTED).
    public static let maxRoutes = 1000

    private let store: AdapterStore
    /// The routes, compiled, highest priority first.
    public private(set) var table = RouteTable([])

    /// An empty book over `store`.
    public init(store: AdapterStore) {
        self.store = store
    }

    /// Reads the stored routes (at start).
    mutating func restore() throws(RegistryError) {
        table = RouteTable(try VersionCatalog.mapped { () throws(StoreError) in try store.routes() })
    }

    /// Creates or replaces a route after checking it: its topic filter, that the adapter and router it names are
    /// held in `catalog` and of those kinds, its confidence, and the route limit.
    public mutating func set(_ route: RouteRecord, catalog: VersionCatalog) throws(RegistryError) {
        if let problem = RouteTable.problem(withFilter: route.topic) { throw .invalidRouteTopic(topic: route.topic, problem: problem) }
        for (name, kind) in [(route.adapter, ArtifactKind.adapter), (route.router, .router)] where !name.isEmpty {
            guard let held = catalog.kind(of: name) else { throw .unknownReference(kind: kind.rawValue, name: name) }
            guard held == kind else { throw .notKind(name: name, kind: kind) }
        }
        guard route.minConfidence.isFinite, (0...1).contains(route.minConfidence) else { throw .invalidConfidence(route.minConfidence) }
        let parts = route.blendParts
        if !route.blend.isEmpty {
            guard route.adapter.isEmpty, route.router.isEmpty else {
                throw .invalidRouteBlend("a route serves one adapter, a router's choice or a blend: give the blend alone")
            }
            if let problem = AdapterResolver.blendProblem(parts) { throw .invalidRouteBlend(problem) }
            for part in parts {
                try VersionCatalog.mapped { () throws(StoreError) in try AdapterName.check(part.name, field: "blend adapter") }
                guard let held = catalog.kind(of: part.name) else { throw .unknownReference(kind: ArtifactKind.adapter.rawValue, name: part.name) }
                guard held == .adapter else { throw .notKind(name: part.name, kind: .adapter) }
            }
        }
        var routes = table.routes.filter { $0.name != route.name }
        guard routes.count < Self.maxRoutes else { throw .limit(what: "routes", limit: Self.maxRoutes) }
        try VersionCatalog.mapped { () throws(StoreError) in try store.save(route: route) }
        // Kept in memory in the store's order (priority, then name as SQLite's binary collation sorts it): a
        // change costs the same however many routes there are in SQLite, which is never read back.
        routes.append(route)
        routes.sort { lhs, rhs in
            lhs.priority != rhs.priority ? lhs.priority > rhs.priority : Array(lhs.name.utf8).lexicographicallyPrecedes(Array(rhs.name.utf8))
        }
        table = RouteTable(routes)
    }

    /// Deletes a route; a name that is not a route is `StoreError.notFound`.
    public mutating func delete(name: String) throws(RegistryError) {
        try VersionCatalog.mapped { () throws(StoreError) in try store.deleteRoute(name: name) }
        table = RouteTable(table.routes.filter { $0.name != name })
    }
}
