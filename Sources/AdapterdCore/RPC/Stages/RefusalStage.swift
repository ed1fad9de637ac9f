import MQTTRPC

/// Answers a request that could not be decoded (too large, an unsupported content type, a malformed body, an
/// unknown method) with why, counted as rejected.
struct RefusalStage: RPCStage {
    let stats: WorkerStats

    func handle(_ invocation: RPCInvocation, next: @escaping @Sendable (RPCInvocation) async -> CachedReply) async -> CachedReply {
        guard let refusal = invocation.refusal else { return await next(invocation) }
        await stats.reject()
        return invocation.failure(refusal)
    }
}
