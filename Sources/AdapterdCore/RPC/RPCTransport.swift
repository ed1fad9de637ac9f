import Logging
import MQTTRPC

/// What carries the server's replies and results away: the worker's MQTT connection in production, a recorder in
/// tests and the fuzz harness. Requests come in as `MQTTMessage` values (topic, payload, properties), which any
/// transport can make; so `RPCServer` and every handler behind it run without a broker.
public protocol RPCTransport: Sendable {
    /// Sends one message (QoS 1, not retained). A failure is the transport's to report: a reply that cannot be sent
    /// is the client's timeout, not the request's error.
    func send(_ topic: String, payload: [UInt8], properties: MQTTProperties)
}

/// An MQTT connection as the server's transport, logging what it cannot send.
public struct MQTTTransport: RPCTransport {
    let client: MQTTClient
    let logger: Logger

    /// Replies over `client`; failures to send go to `logger`.
    public init(client: MQTTClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public func send(_ topic: String, payload: [UInt8], properties: MQTTProperties) {
        do {
            try client.publish(topic, payload: payload, qos: 1, properties: properties)
        } catch {
            logger.error("cannot publish", metadata: ["topic": "\(topic)", "error": "\(error)"])
        }
    }
}
