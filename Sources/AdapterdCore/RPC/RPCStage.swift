import AdapterdAPI
import MQTTRPC

/// A decoded request on its way through the server's stages to its handler, with what a stage needs to answer it
/// itself (a refusal in the method's own reply type).
public struct RPCInvocation: Sendable {
    /// Which of the worker's lanes the request arrived on.
    public enum Lane: Sendable {
        /// `…/infer/…`: inference, many at once.
        case inference
        /// `…/control/<method>`: adapter control, one at a time.
        case control
    }

    /// The method, or nil when the topic named none the worker has.
    let method: RPCMethod?
    /// The decoded request, or nil when `refusal` says why there is none.
    let call: RPCMethod.Call?
    /// Why the request cannot run (too large, an unsupported content type, a body that does not decode, an unknown
    /// method), found while decoding it.
    let refusal: RPCError?
    public let lane: Lane
    public let context: RPCContext
    let encoding: RPCEncoding
    /// The body or MQTT 5 correlation the reply echoes.
    let correlationID: String
    /// The key under which repeats of this request are answered from the reply cache, when it is correlated.
    let duplicateKey: String?

    /// A reply refusing the request with `error`, in the method's own reply type (any reply type when the method is
    /// unknown: every reply carries status, error and correlation id in the same fields).
    func failure(_ error: RPCError) -> CachedReply {
        guard let method else { return RPCMethod.failure(error, as: Adapterd_V1_UnloadAdapterReply.self, encoding: encoding, correlationID: correlationID) }
        return method.encodeFailure(error, encoding, correlationID)
    }
}

/// One rule every request passes on its way to its handler, in the server's order: a stage answers the request
/// itself (a refusal, a cached reply) or passes it on with `next`, and may act around what follows.
public protocol RPCStage: Sendable {
    /// Answers `invocation`, calling `next` to pass it on.
    func handle(_ invocation: RPCInvocation, next: @escaping @Sendable (RPCInvocation) async -> CachedReply) async -> CachedReply
}
