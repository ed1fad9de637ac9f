import MQTTRPC

/// Runs control requests one at a time, in arrival order (see `ControlLane`); inference passes straight on.
struct ControlLaneStage: RPCStage {
    let lane: ControlLane

    func handle(_ invocation: RPCInvocation, next: @escaping @Sendable (RPCInvocation) async -> CachedReply) async -> CachedReply {
        guard invocation.lane == .control else { return await next(invocation) }
        return await lane.run { await next(invocation) }
    }
}
