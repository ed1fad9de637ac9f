import AdapterFormats
import Foundation
import GRDB

/// One registered (name, version) in the SQLite registry.
public struct AdapterVersionRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "adapter_version"

    public var name: String
    public var version: String
    /// SHA-256 of the adapter's files; also its directory under `{data}/adapters/`.
    public var sha256: String
    public var sizeBytes: Int
    public var rank: Int
    /// Adapted module kinds, comma-separated.
    public var targets: String
    /// SHA-256 of the base model's `model.safetensors` it was validated against.
    public var baseFingerprint: String
    /// Label names, newline-separated.
    public var labels: String
    /// Where it came from (a path, or "push").
    public var source: String
    public var createdAt: Date
    public var state: AdapterState
    /// When it last became active (orders rollback candidates).
    public var activatedAt: Date?
    /// A LoRA adapter or an input router.
    public var kind: ArtifactKind

    public init(
        name: String, version: String, sha256: String, sizeBytes: Int, rank: Int, targets: [String],
        baseFingerprint: String, labels: [String], source: String, createdAt: Date = Date(), state: AdapterState = .staged,
        kind: ArtifactKind = .adapter
    ) {
        self.kind = kind
        self.name = name
        self.version = version
        self.sha256 = sha256
        self.sizeBytes = sizeBytes
        self.rank = rank
        self.targets = targets.joined(separator: ",")
        self.baseFingerprint = baseFingerprint
        self.labels = labels.joined(separator: "\n")
        self.source = source
        self.createdAt = createdAt
        self.state = state
    }
}

/// One entry of an adapter's audit trail.
/// A text and its correct label, stored on the worker for training an adapter name later.
public struct FeedbackRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "feedback"

    public var id: Int64?
    public var name: String
    public var text: String
    public var label: String
    public var at: Date

    public init(name: String, text: String, label: String, at: Date = Date()) {
        self.name = name
        self.text = text
        self.label = label
        self.at = at
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

public struct HistoryRecord: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "history"

    public var id: Int64?
    public var name: String
    public var version: String
    public var action: LifecycleAction
    /// Who asked (a client id, "worker", "guard").
    public var actor: String
    public var reason: String
    public var at: Date

    public init(name: String, version: String, action: LifecycleAction, actor: String, reason: String, at: Date = Date()) {
        self.name = name
        self.version = version
        self.action = action
        self.actor = actor
        self.reason = reason
        self.at = at
    }

    public mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }
}
