import MQTTRPC

/// Refuses a request whose MQTT 5 message expiry passed before it could run (DEADLINE_EXCEEDED): its sender has
/// stopped waiting, and running it would only delay requests that are still wanted.
struct ExpiryStage: RPCStage {
    let stats: WorkerStats

    func handle(_ invocation: RPCInvocation, next: @escaping @Sendable (RPCInvocation) async -> CachedReply) async -> CachedReply {
        guard let deadline = invocation.context.deadline, ContinuousClock.now >= deadline else { return await next(invocation) }
        await stats.reject()
        return invocation.failure(RPCError(.deadlineExceeded, "the request expired before it could run"))
    }
}
