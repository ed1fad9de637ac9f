import AdapterdClient
import MQTTRPC

/// One RPC method: its name, request and reply types, and handler, erased so methods can share one table.
public struct RPCMethod: Sendable {
    /// A decoded request, ready to run.
    struct Call: Sendable {
        /// The body's reply address fields (MQTT 3.1.1 clients), empty when absent.
        let replyTo: String
        let correlationID: String
        /// Runs the handler and encodes its reply, or the failure it threw mapped to a status.
        let run: @Sendable (RPCContext) async -> CachedReply
    }

    /// The method's name, as the control topic's last level spells it.
    public let name: String
    let decode: @Sendable (_ payload: [UInt8], _ encoding: RPCEncoding) throws(RPCError) -> Call
    let encodeFailure: @Sendable (_ error: RPCError, _ encoding: RPCEncoding, _ correlationID: String) -> CachedReply

    /// A method taking `Request` and answering `Reply` through `handler`. What the handler throws becomes the
    /// reply's status through `RPCError(mapping:)`.
    public static func unary<Request, Reply>(
        _ method: AdapterdMethod<Request, Reply>, _ handler: @escaping @Sendable (Request, RPCContext) async throws -> Reply
    ) -> RPCMethod {
        RPCMethod(
            name: method.name,
            decode: { payload, encoding throws(RPCError) in
                let request = try RPCCodec.decode(Request.self, from: payload, encoding: encoding)
                return Call(replyTo: request.replyTo, correlationID: request.correlationID) { context in
                    var reply: Reply
                    do {
                        reply = try await handler(request, context)
                        reply.status = .ok
                    } catch {
                        reply = Reply(failure: RPCError(mapping: error))
                    }
                    if !request.correlationID.isEmpty { reply.correlationID = request.correlationID }
                    return CachedReply(payload: RPCCodec.encode(reply, encoding: encoding), status: RPCStatus(reply.status))
                }
            },
            encodeFailure: { error, encoding, correlationID in failure(error, as: Reply.self, encoding: encoding, correlationID: correlationID) })
    }

    /// A `Reply` carrying `error`'s status and message (and `correlationID`), encoded.
    static func failure<Reply: RPCReplyMessage>(_ error: RPCError, as _: Reply.Type, encoding: RPCEncoding, correlationID: String) -> CachedReply {
        var reply = Reply(failure: error)
        if !correlationID.isEmpty { reply.correlationID = correlationID }
        return CachedReply(payload: RPCCodec.encode(reply, encoding: encoding), status: error.status)
    }

    /// Decodes `payload` and runs the handler: what the server does, without a broker (for tests and tools).
    public func call(_ payload: [UInt8], encoding: RPCEncoding = .json, context: RPCContext = RPCContext()) async -> CachedReply {
        do {
            return try await decode(payload, encoding).run(context)
        } catch {
            return encodeFailure(error, encoding, "")
        }
    }
}
