import AdapterdAPI

/// Rollout methods: traffic splits between versions, watched by the rollout guard.
public struct RolloutHandlers: Sendable {
    let services: WorkerServices

    /// Handlers over `services`.
    public init(services: WorkerServices) {
        self.services = services
    }

    /// The methods, for the server's table.
    public var methods: [RPCMethod] { [.unary(.setRollout, setRollout)] }

    /// Splits a name's traffic between loaded versions by weight (empty splits end the rollout).
    public func setRollout(_ request: Adapterd_V1_SetRolloutRequest, _ context: RPCContext) async throws -> Adapterd_V1_SetRolloutReply {
        try await services.registry.setRollout(name: request.name, splits: request.splits.mapValues(Int.init))
        await services.rolloutGuard.reset(name: request.name)
        services.logger.info("rollout", metadata: ["name": "\(request.name)", "splits": "\(request.splits)"])
        return Adapterd_V1_SetRolloutReply()
    }
}
