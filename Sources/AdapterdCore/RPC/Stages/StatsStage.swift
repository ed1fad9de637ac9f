import MQTTRPC

/// Counts every request that reaches a handler while it runs, and its status when it ends (what the status
/// document, the metrics and a graceful drain read).
struct StatsStage: RPCStage {
    let stats: WorkerStats

    func handle(_ invocation: RPCInvocation, next: @escaping @Sendable (RPCInvocation) async -> CachedReply) async -> CachedReply {
        await stats.begin()
        let reply = await next(invocation)
        await stats.end(status: reply.status.rawValue)
        return reply
    }
}
