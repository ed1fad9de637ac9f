import MQTTRPC

/// What a handler knows about a request beyond its body: who sent it, where, and until when it may run.
public struct RPCContext: Sendable {
    /// Who sent the request, for the audit trail: the MQTT 5 user property `actor`, else "mqtt".
    public var actor: String
    /// The topic the request arrived on.
    public var topic: String
    /// The topic levels after `infer` (sensor type, sensor id …); empty for control requests.
    public var sensorPath: [String]
    /// When the worker took the request from the broker.
    public var receivedAt: ContinuousClock.Instant
    /// When the request expires (MQTT 5 message expiry), if it does.
    public var deadline: ContinuousClock.Instant?

    /// A context for a request sent by `actor` (for handlers called directly, as in tests).
    public init(actor: String = "mqtt", topic: String = "", sensorPath: [String] = [], receivedAt: ContinuousClock.Instant = .now, deadline: ContinuousClock.Instant? = nil) {
        self.actor = actor
        self.topic = topic
        self.sensorPath = sensorPath
        self.receivedAt = receivedAt
        self.deadline = deadline
    }

    /// The context of `message`.
    init(_ message: MQTTMessage, sensorPath: [String]) {
        self.init(
            actor: message.properties.userProperty("actor") ?? "mqtt", topic: message.topic, sensorPath: sensorPath,
            receivedAt: message.receivedAt,
            deadline: message.properties.messageExpiry.map { message.receivedAt + .seconds(Int64($0)) })
    }
}
