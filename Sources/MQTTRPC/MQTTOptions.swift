/// How to reach and talk to a broker.
public struct MQTTOptions: Sendable {
    /// MQTT protocol version.
    public enum ProtocolVersion: Sendable {
        case v5, v311
    }

    /// TLS files.
    public struct TLS: Sendable {
        /// CA certificates to trust; nil trusts the system's store (`/etc/ssl/certs`).
        public var caFile: String?
        public var certFile: String?
        public var keyFile: String?

        public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil) {
            self.caFile = caFile
            self.certFile = certFile
            self.keyFile = keyFile
        }
    }

    /// A message the broker publishes when this client disappears.
    public struct Will: Sendable {
        public var topic: String
        public var payload: [UInt8]
        public var qos: Int
        public var retain: Bool

        public init(topic: String, payload: [UInt8], qos: Int = 1, retain: Bool = true) {
            self.topic = topic
            self.payload = payload
            self.qos = qos
            self.retain = retain
        }
    }

    public var host: String
    public var port: Int
    public var clientID: String
    public var protocolVersion: ProtocolVersion = .v5
    /// Start without the broker's stored session (MQTT 5 clean start / 3.1.1 clean session).
    public var cleanStart = true
    /// MQTT 5: seconds the broker keeps the session (subscriptions, queued QoS 1 messages) after a disconnect.
    public var sessionExpiry: UInt32 = 0
    public var keepAlive: Int = 30
    public var username: String?
    public var password: String?
    public var tls: TLS?
    /// MQTT 5 receive maximum: QoS 1/2 messages the broker may have in flight to us (backpressure).
    public var receiveMaximum: Int?
    public var will: Will?
    /// Reconnect delay after a lost connection: starts at `minimum`, doubles up to `maximum` (seconds).
    public var reconnectDelay: (minimum: Int, maximum: Int) = (1, 30)

    public init(host: String, port: Int, clientID: String) {
        self.host = host
        self.port = port
        self.clientID = clientID
    }

    /// Parses `mqtt://host:port` (or `mqtts://`, default ports 1883 and 8883). `mqtts://` always means TLS,
    /// trusting the system's CA store until a CA file is set.
    public static func parse(url: String, clientID: String) throws(MQTTError) -> MQTTOptions {
        var rest = Substring(url)
        var defaultPort = 1883
        if rest.hasPrefix("mqtt://") {
            rest = rest.dropFirst(7)
        } else if rest.hasPrefix("mqtts://") {
            rest = rest.dropFirst(8)
            defaultPort = 8883
        } else if rest.contains("://") {
            throw .invalidURL(url)
        }
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        var host = String(rest)
        var port = defaultPort
        if let colon = rest.lastIndex(of: ":"), !rest.hasSuffix("]") {
            host = String(rest[..<colon])
            guard let parsed = Int(rest[rest.index(after: colon)...]), (1...65535).contains(parsed) else { throw .invalidURL(url) }
            port = parsed
        }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw .invalidURL(url) }
        var options = MQTTOptions(host: host, port: port, clientID: clientID)
        if url.hasPrefix("mqtts://") { options.tls = TLS() }
        return options
    }
}
