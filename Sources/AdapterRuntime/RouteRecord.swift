import Foundation
import GRDB

/// A persisted routing rule: which adapter serves requests matching its criteria.
public struct RouteRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "route"

    public var name: String
    /// MQTT topic filter matched against the request topic; empty matches any.
    public var topic: String
    /// Matched against the first topic level after `infer`; empty matches any.
    public var sensorType: String
    /// Required request metadata, as sorted `key=value` lines.
    public var metadata: String
    public var adapter: String
    public var priority: Int
    /// Input router consulted for requests naming no adapter (empty: none).
    public var router: String
    /// The router's choice serves at this confidence or above; below it, `adapter` does.
    public var minConfidence: Double
    /// A weighted blend that serves instead of one adapter, as `name=weight` lines in order (empty: none).
    public var blend: String

    public init(
        name: String, topic: String, sensorType: String, metadata: [String: String], adapter: String, priority: Int,
        router: String = "", minConfidence: Double = 0, blend: [(name: String, weight: Float)] = []
    ) {
        self.blend = blend.map { "\($0.name)=\($0.weight)" }.joined(separator: "\n")
        self.router = router
        self.minConfidence = minConfidence
        self.name = name
        self.topic = topic
        self.sensorType = sensorType
        self.metadata = metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\n")
        self.adapter = adapter
        self.priority = priority
    }

    /// The blend's parts, in order.
    public var blendParts: [(name: String, weight: Float)] {
        blend.split(separator: "\n").compactMap { line in
            guard let equals = line.lastIndex(of: "="), let weight = Float(line[line.index(after: equals)...]) else { return nil }
            return (String(line[..<equals]), weight)
        }
    }

    /// The required metadata as a map.
    public var metadataPairs: [String: String] {
        var pairs: [String: String] = [:]
        for line in metadata.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            pairs[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        return pairs
    }
}

/// A session's pinned adapter version (affinity).
public struct SessionRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "session"

    public var session: String
    public var adapter: String
    public var version: String
    public var expiresAt: Date

    public init(session: String, adapter: String, version: String, expiresAt: Date) {
        self.session = session
        self.adapter = adapter
        self.version = version
        self.expiresAt = expiresAt
    }
}

/// One version's weight in a name's traffic split (table `rollout`, one row per (name, version)).
struct RolloutSplitRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "rollout"

    /// The table's columns.
    enum Columns {
        static let name = Column(CodingKeys.name)
        static let version = Column(CodingKeys.version)
        static let weight = Column(CodingKeys.weight)
    }

    var name: String
    var version: String
    var weight: Int
}
