import AdapterdAPI
import MQTTRPC
import SwiftProtobuf

/// A request body that can carry MQTT 3.1.1 reply addressing.
public protocol RPCRequestMessage: SwiftProtobuf.Message {
    var replyTo: String { get set }
    var correlationID: String { get set }
}

/// A reply body with a status, an error message and the echoed correlation id.
public protocol RPCReplyMessage: SwiftProtobuf.Message {
    var status: Adapterd_V1_StatusCode { get set }
    var error: String { get set }
    var correlationID: String { get set }
}

extension Adapterd_V1_InferRequest: RPCRequestMessage {}
extension Adapterd_V1_LoadAdapterRequest: RPCRequestMessage {}
extension Adapterd_V1_UnloadAdapterRequest: RPCRequestMessage {}
extension Adapterd_V1_ListAdaptersRequest: RPCRequestMessage {}
extension Adapterd_V1_GetStatusRequest: RPCRequestMessage {}
extension Adapterd_V1_ActivateAdapterRequest: RPCRequestMessage {}
extension Adapterd_V1_RollbackRequest: RPCRequestMessage {}
extension Adapterd_V1_HistoryRequest: RPCRequestMessage {}
extension Adapterd_V1_SetRouteRequest: RPCRequestMessage {}
extension Adapterd_V1_DeleteRouteRequest: RPCRequestMessage {}
extension Adapterd_V1_ListRoutesRequest: RPCRequestMessage {}
extension Adapterd_V1_ClearSessionRequest: RPCRequestMessage {}
extension Adapterd_V1_SetRouteReply: RPCReplyMessage {}
extension Adapterd_V1_DeleteRouteReply: RPCReplyMessage {}
extension Adapterd_V1_ListRoutesReply: RPCReplyMessage {}
extension Adapterd_V1_ClearSessionReply: RPCReplyMessage {}
extension Adapterd_V1_SetRolloutRequest: RPCRequestMessage {}
extension Adapterd_V1_SetRolloutReply: RPCReplyMessage {}
extension Adapterd_V1_PinAdapterRequest: RPCRequestMessage {}
extension Adapterd_V1_PinAdapterReply: RPCReplyMessage {}
extension Adapterd_V1_GetAdapterRequest: RPCRequestMessage {}
extension Adapterd_V1_GetAdapterReply: RPCReplyMessage {}
extension Adapterd_V1_InferReply: RPCReplyMessage {}
extension Adapterd_V1_ActivateAdapterReply: RPCReplyMessage {}
extension Adapterd_V1_RollbackReply: RPCReplyMessage {}
extension Adapterd_V1_HistoryReply: RPCReplyMessage {}
extension Adapterd_V1_LoadAdapterReply: RPCReplyMessage {}
extension Adapterd_V1_UnloadAdapterReply: RPCReplyMessage {}
extension Adapterd_V1_ListAdaptersReply: RPCReplyMessage {}
extension Adapterd_V1_GetStatusReply: RPCReplyMessage {}

extension RPCStatus {
    /// The schema's enum value for this code.
    public var proto: Adapterd_V1_StatusCode { Adapterd_V1_StatusCode(rawValue: rawValue) ?? .unknown }

    /// The code for a schema enum value.
    public init(_ proto: Adapterd_V1_StatusCode) {
        self = RPCStatus(rawValue: proto.rawValue) ?? .unknown
    }
}

extension RPCReplyMessage {
    /// A reply that reports `error`.
    public init(failure error: RPCError) {
        self.init()
        status = error.status.proto
        self.error = error.message
    }
}

extension Adapterd_V1_PushAdapterRequest: RPCRequestMessage {}
extension Adapterd_V1_PushAdapterReply: RPCReplyMessage {}
extension Adapterd_V1_TrainAdapterRequest: RPCRequestMessage {}
extension Adapterd_V1_TrainAdapterReply: RPCReplyMessage {}
extension Adapterd_V1_CancelTrainingRequest: RPCRequestMessage {}
extension Adapterd_V1_CancelTrainingReply: RPCReplyMessage {}
extension Adapterd_V1_FeedbackRequest: RPCRequestMessage {}
extension Adapterd_V1_FeedbackReply: RPCReplyMessage {}
extension Adapterd_V1_FederatedRoundRequest: RPCRequestMessage {}
extension Adapterd_V1_FederatedRoundReply: RPCReplyMessage {}
