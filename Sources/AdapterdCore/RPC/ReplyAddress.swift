import AdapterEngine
import MQTTRPC

/// Where a request's reply goes and how it is correlated: MQTT 5 Response Topic and Correlation Data, or the
/// `replyTo` / `correlationId` body fields MQTT 3.1.1 clients use.
struct ReplyAddress: Sendable {
    let topic: String
    /// MQTT 5 correlation data, echoed as a property.
    let correlationData: [UInt8]?
    /// Body correlation id, echoed in the reply body.
    let correlationID: String
    /// Whether the request used MQTT 5 properties (the reply then carries them too).
    let usesProperties: Bool

    /// Key under which duplicates of this request are recognised, when it is correlated at all.
    var duplicateKey: String? {
        if let correlationData, !correlationData.isEmpty {
            return "v5|\(topic)|" + correlationData.map { String($0, radix: 16) }.joined(separator: ".")
        }
        return correlationID.isEmpty ? nil : "body|\(topic)|\(correlationID)"
    }

    /// The address of `message`, reading the body fields from the decoded request, or, when the body did not
    /// decode, from whatever JSON object it holds.
    static func of(_ message: MQTTMessage, replyTo: String?, correlationID: String?) -> ReplyAddress? {
        if let topic = message.properties.responseTopic, !topic.isEmpty {
            return ReplyAddress(topic: topic, correlationData: message.properties.correlationData, correlationID: correlationID ?? "", usesProperties: true)
        }
        var replyTo = replyTo
        var correlationID = correlationID
        if replyTo == nil, let value = try? JSONValue.parse(message.payload) {
            if case .string(let topic)? = value["replyTo"] ?? value["reply_to"] { replyTo = topic }
            if case .string(let id)? = value["correlationId"] ?? value["correlation_id"] { correlationID = id }
        }
        guard let replyTo, !replyTo.isEmpty, !replyTo.contains("+"), !replyTo.contains("#") else { return nil }
        return ReplyAddress(topic: replyTo, correlationData: nil, correlationID: correlationID ?? "", usesProperties: false)
    }
}
