import MQTTRPC

/// Refuses new requests while the worker drains for a graceful stop (UNAVAILABLE: retry on another worker), so
/// those already running finish and nothing starts that would be cut off.
struct DrainStage: RPCStage {
    let stats: WorkerStats
    let workerID: String

    func handle(_ invocation: RPCInvocation, next: @escaping @Sendable (RPCInvocation) async -> CachedReply) async -> CachedReply {
        guard await stats.draining else { return await next(invocation) }
        await stats.reject()
        return invocation.failure(RPCError(.unavailable, "worker '\(workerID)' is shutting down; retry"))
    }
}
