import MQTTRPC

/// Answers a repeated request (the same reply topic and correlation, within the window) with the first one's
/// reply, so a client's retry after a lost reply never runs a control method twice.
struct DuplicateStage: RPCStage {
    let replies: ReplyCache
    /// How long a reply is kept for repeats (at least the request's own expiry).
    let window: Duration

    func handle(_ invocation: RPCInvocation, next: @escaping @Sendable (RPCInvocation) async -> CachedReply) async -> CachedReply {
        guard let key = invocation.duplicateKey else { return await next(invocation) }
        let expiry = invocation.context.deadline.map { $0 - invocation.context.receivedAt } ?? .zero
        return await replies.reply(for: key, window: max(window, expiry)) { await next(invocation) }.reply
    }
}
