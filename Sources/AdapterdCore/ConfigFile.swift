import Foundation
import Yams

/// adapterd's configuration file (YAML, or JSON, which YAML reads too). Every key is optional; flags and
/// `ADAPTERD_*` environment variables override it.
///
/// ```yaml
/// broker: mqtt://127.0.0.1:1883
/// workerId: edge-01
/// model: /opt/adapterd/models/all-MiniLM-L6-v2
/// dataDir: /var/lib/adapterd
/// mqttVersion: "5"
/// maxBatch: 32
/// precision: int8
/// cacheMaxBytes: 268435456
/// maxRequestBytes: 1048576
/// results: false
/// defaultAdapter: intent
/// adapters:
///   - {name: intent, version: v1, path: /opt/adapterd/adapters/intent}
/// username: adapterd
/// passwordFile: /etc/adapterd/broker-password
/// tls: {ca: /etc/adapterd/ca.pem, cert: /etc/adapterd/client.pem, key: /etc/adapterd/client.key}
/// rolloutGuard: {minRequests: 50, maxErrorRateIncrease: 0.05, maxLatencyRatio: 1.5}
/// security: {requireSigned: true, trustedKeys: [/etc/adapterd/fleet.pub], maxPushBytes: 536870912, adapterRoots: [/srv/adapters]}
/// baseModelNames: [sentence-transformers/all-MiniLM-L6-v2]
/// http: 127.0.0.1:9464
/// pool: edge-pool
/// metrics: {interval: 10}
/// logLevel: info
/// ```
public struct ConfigFile: Decodable, Sendable, Equatable {
    public struct Adapter: Decodable, Sendable, Equatable {
        public var name: String
        public var version: String?
        public var path: String
    }

    /// The rollout guard's policy.
    public struct Guard: Decodable, Sendable, Equatable {
        public var minRequests: Int?
        public var maxErrorRateIncrease: Double?
        public var maxLatencyRatio: Double?
    }

    /// Metrics publishing.
    public struct MetricsSettings: Decodable, Sendable, Equatable {
        /// Seconds between metrics documents.
        public var interval: Double?
    }

    /// Who may push adapters.
    public struct Security: Decodable, Sendable, Equatable {
        public var requireSigned: Bool?
        public var trustedKeys: [String]?
        public var maxPushBytes: Int64?
        /// Directories LoadAdapter may read from (besides the data directory).
        public var adapterRoots: [String]?
    }

    public struct TLS: Decodable, Sendable, Equatable {
        public var ca: String
        public var cert: String?
        public var key: String?
    }

    public var broker: String?
    public var workerId: String?
    public var model: String?
    public var dataDir: String?
    public var mqttVersion: String?
    public var maxBatch: Int?
    /// "fp32" or "int8".
    public var precision: String?
    /// A kernel path to run instead of the detected one ("portable", "avx2", "avx2-vnni", "avx512", "avx512-vnni", "amx").
    public var cpuPath: String?
    public var cacheMaxBytes: Int?
    /// Largest request body accepted, in bytes.
    public var maxRequestBytes: Int?
    public var results: Bool?
    public var defaultAdapter: String?
    public var adapters: [Adapter]?
    public var username: String?
    public var password: String?
    /// A file holding the broker password (its first line), so the password appears in no process listing.
    public var passwordFile: String?
    public var tls: TLS?
    public var rolloutGuard: Guard?
    public var security: Security?
    public var baseModelNames: [String]?
    public var http: String?
    public var pool: String?
    public var metrics: MetricsSettings?
    public var logLevel: String?

    /// An empty configuration: every setting from flags, environment or defaults.
    public init() {}

    /// Why a configuration file was refused.
    public struct Failure: Error, CustomStringConvertible {
        public let path: String
        public let reason: String
        public var description: String { "\(path): \(reason)" }
    }

    /// Reads and decodes `path`; unknown keys are errors, so a typo does not silently fall back to a default.
    public static func load(path: String) throws -> ConfigFile {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw Failure(path: path, reason: "cannot read: \(error.localizedDescription)")
        }
        do {
            if let mapping = try Yams.load(yaml: text) as? [String: Any] {
                let known: Set<String> = ["broker", "workerId", "model", "dataDir", "mqttVersion", "maxBatch", "precision", "cpuPath", "cacheMaxBytes", "maxRequestBytes", "results", "defaultAdapter", "adapters", "username", "password", "passwordFile", "tls", "rolloutGuard", "security", "baseModelNames", "http", "pool", "metrics", "logLevel"]
                if let unknown = mapping.keys.sorted().first(where: { !known.contains($0) }) {
                    throw Failure(path: path, reason: "unknown key '\(unknown)'; known keys: \(known.sorted().joined(separator: ", "))")
                }
            }
            return try YAMLDecoder().decode(ConfigFile.self, from: text)
        } catch let failure as Failure {
            throw failure
        } catch let error as DecodingError {
            throw Failure(path: path, reason: Self.describe(error))
        } catch {
            throw Failure(path: path, reason: "not valid YAML: \(error)")
        }
    }

    static func describe(_ error: DecodingError) -> String {
        switch error {
        case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
            return "'\(context.codingPath.map(\.stringValue).joined(separator: "."))' should be \(type)"
        case .keyNotFound(let key, let context):
            return "'\((context.codingPath + [key]).map(\.stringValue).joined(separator: "."))' is required"
        case .dataCorrupted(let context):
            return context.debugDescription
        @unknown default:
            return "\(error)"
        }
    }
}
