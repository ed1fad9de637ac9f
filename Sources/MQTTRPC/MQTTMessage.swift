/// A user property of an MQTT 5 message.
public struct MQTTUserProperty: Sendable, Equatable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// MQTT 5 publish properties this project reads and writes.
public struct MQTTProperties: Sendable, Equatable {
    public var responseTopic: String?
    public var correlationData: [UInt8]?
    public var contentType: String?
    /// Seconds the message stays valid (as the broker forwarded it: the remaining lifetime).
    public var messageExpiry: UInt32?
    public var userProperties: [MQTTUserProperty] = []

    public init(
        responseTopic: String? = nil, correlationData: [UInt8]? = nil, contentType: String? = nil,
        messageExpiry: UInt32? = nil, userProperties: [MQTTUserProperty] = []
    ) {
        self.responseTopic = responseTopic
        self.correlationData = correlationData
        self.contentType = contentType
        self.messageExpiry = messageExpiry
        self.userProperties = userProperties
    }

    /// The first user property called `name`.
    public func userProperty(_ name: String) -> String? {
        userProperties.first { $0.name == name }?.value
    }
}

/// A message received from the broker, copied out of libmosquitto's buffers.
public struct MQTTMessage: Sendable {
    public var topic: String
    public var payload: [UInt8]
    public var qos: Int
    public var retain: Bool
    public var properties: MQTTProperties
    /// When the client received it (for expiry and latency).
    public var receivedAt: ContinuousClock.Instant

    public init(topic: String, payload: [UInt8], qos: Int = 0, retain: Bool = false, properties: MQTTProperties = MQTTProperties(), receivedAt: ContinuousClock.Instant = .now) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties
        self.receivedAt = receivedAt
    }
}
