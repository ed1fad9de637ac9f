import AdapterdClient
import Foundation
import MQTTRPC

/// How a fleet controller reaches the broker: its URL, the login and the CA for `mqtts://`, as adapterctl's options
/// give them; the watcher's connection options and a connection to one worker's topics.
public struct FleetBroker: Sendable {
    public let url: String
    public let username: String?
    public let password: String?
    public let tlsCAFile: String?

    /// The broker at `url`, logged in as `username` when given, its certificate checked against `tlsCAFile`.
    public init(url: String, username: String? = nil, password: String? = nil, tlsCAFile: String? = nil) {
        self.url = url
        self.username = username
        self.password = password
        self.tlsCAFile = tlsCAFile
    }

    /// Options for a connection of the controller's own, its client id `prefix` and a random suffix.
    public func options(clientPrefix prefix: String) throws -> MQTTOptions {
        var options = try MQTTOptions.parse(url: url, clientID: prefix + UUID().uuidString.prefix(8).lowercased())
        options.username = username
        options.password = password
        if let tlsCAFile { options.tls = MQTTOptions.TLS(caFile: tlsCAFile) }
        return options
    }

    /// A connection to `worker`'s topics.
    public func client(for worker: String, timeout: Duration) async throws -> AdapterdClient {
        try await AdapterdClient(brokerURL: url, worker: worker, username: username, password: password, tlsCAFile: tlsCAFile, timeout: timeout)
    }
}
