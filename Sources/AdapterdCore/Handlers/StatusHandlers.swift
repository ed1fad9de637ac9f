import AdapterdAPI
import AdapterdClient
import Foundation

/// The status method: the worker's state, counters, cache and engine.
public struct StatusHandlers: Sendable {
    let services: WorkerServices

    /// Handlers over `services`.
    public init(services: WorkerServices) {
        self.services = services
    }

    /// The methods, for the server's table.
    public var methods: [RPCMethod] { [.unary(.getStatus, status)] }

    /// The worker's state and figures now.
    public func status(_ request: Adapterd_V1_GetStatusRequest, _ context: RPCContext) async throws -> Adapterd_V1_GetStatusReply {
        let configuration = services.configuration
        let stats = services.stats
        var reply = Adapterd_V1_GetStatusReply()
        let status = Worker.status("online", configuration: configuration, startedAt: services.startedAt)
        reply.worker = status.worker
        reply.state = await stats.draining ? "draining" : "online"
        reply.version = status.version
        reply.model = status.model
        reply.startedAt = status.startedAt
        reply.uptimeSeconds = Date().timeIntervalSince(services.startedAt)
        reply.requestsTotal = Int64(await stats.executed)
        reply.requestsFailed = Int64(await stats.failed)
        reply.inFlight = Int32(await stats.inFlight)
        reply.adaptersLoaded = Int32(await services.registry.count)
        let cache = await services.registry.cache.counters
        reply.cacheBytes = Int64(cache.bytes)
        reply.cacheMaxBytes = Int64(configuration.cacheMaxBytes)
        reply.cacheHits = Int64(cache.hits)
        reply.cacheMisses = Int64(cache.misses)
        reply.cacheEvictions = Int64(cache.evictions)
        reply.precision = services.engine.precision.rawValue
        reply.kernelPath = services.engine.path.description
        reply.baseFingerprint = services.baseFingerprint
        return reply
    }
}
