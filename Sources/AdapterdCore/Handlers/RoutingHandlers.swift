import AdapterdAPI
import AdapterRuntime

/// Routing methods: routes by topic, sensor type and metadata, and session affinity.
public struct RoutingHandlers: Sendable {
    let services: WorkerServices

    /// Handlers over `services`.
    public init(services: WorkerServices) {
        self.services = services
    }

    /// The methods, for the server's table.
    public var methods: [RPCMethod] {
        [.unary(.setRoute, setRoute), .unary(.deleteRoute, deleteRoute), .unary(.listRoutes, listRoutes), .unary(.clearSession, clearSession)]
    }

    /// Creates or replaces a route.
    public func setRoute(_ request: Adapterd_V1_SetRouteRequest, _ context: RPCContext) async throws -> Adapterd_V1_SetRouteReply {
        let route = RouteRecord(
            name: request.name, topic: request.topic, sensorType: request.sensorType, metadata: request.metadata,
            adapter: request.adapter, priority: Int(request.priority), router: request.router,
            minConfidence: Double(request.minConfidence), blend: request.blend.map { ($0.name, $0.weight) })
        try await services.registry.setRoute(route)
        var reply = Adapterd_V1_SetRouteReply()
        reply.route = Adapterd_V1_Route(route)
        return reply
    }

    /// Deletes a route.
    public func deleteRoute(_ request: Adapterd_V1_DeleteRouteRequest, _ context: RPCContext) async throws -> Adapterd_V1_DeleteRouteReply {
        try await services.registry.deleteRoute(name: request.name)
        return Adapterd_V1_DeleteRouteReply()
    }

    /// Every route, highest priority first.
    public func listRoutes(_ request: Adapterd_V1_ListRoutesRequest, _ context: RPCContext) async throws -> Adapterd_V1_ListRoutesReply {
        var reply = Adapterd_V1_ListRoutesReply()
        reply.routes = await services.registry.routes.map(Adapterd_V1_Route.init)
        return reply
    }

    /// Forgets a session's pinned versions.
    public func clearSession(_ request: Adapterd_V1_ClearSessionRequest, _ context: RPCContext) async throws -> Adapterd_V1_ClearSessionReply {
        guard !request.session.isEmpty else { throw HandlerError.missingField("session") }
        var reply = Adapterd_V1_ClearSessionReply()
        reply.cleared = Int32(try await services.registry.clear(session: request.session))
        return reply
    }
}
