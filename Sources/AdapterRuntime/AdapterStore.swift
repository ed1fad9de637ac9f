import AdapterFormats
import Foundation
import GRDB

/// The worker's durable adapter state: files content-addressed under `{data}/adapters/{sha256}/` and a SQLite
/// registry (`{data}/adapterd.sqlite`, WAL) of every (name, version), its state and its audit trail.
public final class AdapterStore: Sendable {
    /// Directory holding the registry and the adapter files.
    public let dataDirectory: String
    let database: DatabasePool

    /// Opens (creating and migrating as needed) the store under `dataDirectory`.
    public init(dataDirectory: String) throws(StoreError) {
        self.dataDirectory = dataDirectory
        let path = dataDirectory + "/adapterd.sqlite"
        // SQLite opens a 0-byte file as a new, empty database: every stored adapter would be orphaned without a
        // word. A registry that existed and is now empty is an error, never a fresh start.
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int, size == 0 {
            throw .database("the registry \(path) is an empty file: its adapter versions, history and routes are gone (the adapter files under \(dataDirectory)/adapters are kept); restore it from a backup, or delete it to start with an empty registry")
        }
        do {
            try FileManager.default.createDirectory(atPath: dataDirectory + "/adapters", withIntermediateDirectories: true)
            database = try DatabasePool(path: path)
            try Self.migrator.migrate(database)
        } catch {
            throw .database("the registry \(path) cannot be read (\(error)); restore it from a backup, or move it away to start with an empty registry")
        }
    }

    /// Schema versions, applied in order; a new version appends a migration and never edits an old one.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: adapter versions and history") { db in
            try db.create(table: AdapterVersionRecord.databaseTableName) { table in
                table.column("name", .text).notNull()
                table.column("version", .text).notNull()
                table.column("sha256", .text).notNull()
                table.column("sizeBytes", .integer).notNull()
                table.column("rank", .integer).notNull()
                table.column("targets", .text).notNull()
                table.column("baseFingerprint", .text).notNull()
                table.column("labels", .text).notNull()
                table.column("source", .text).notNull()
                table.column("createdAt", .datetime).notNull()
                table.column("state", .text).notNull()
                table.column("activatedAt", .datetime)
                table.primaryKey(["name", "version"])
            }
            try db.create(table: HistoryRecord.databaseTableName) { table in
                table.autoIncrementedPrimaryKey("id")
                table.column("name", .text).notNull().indexed()
                table.column("version", .text).notNull()
                table.column("action", .text).notNull()
                table.column("actor", .text).notNull()
                table.column("reason", .text).notNull()
                table.column("at", .datetime).notNull()
            }
        }
        migrator.registerMigration("v2: routes and session affinity") { db in
            try db.create(table: RouteRecord.databaseTableName) { table in
                table.primaryKey("name", .text)
                table.column("topic", .text).notNull()
                table.column("sensorType", .text).notNull()
                table.column("metadata", .text).notNull()
                table.column("adapter", .text).notNull()
                table.column("priority", .integer).notNull()
            }
            try db.create(table: SessionRecord.databaseTableName) { table in
                table.column("session", .text).notNull()
                table.column("adapter", .text).notNull()
                table.column("version", .text).notNull()
                table.column("expiresAt", .datetime).notNull().indexed()
                table.primaryKey(["session", "adapter"])
            }
        }
        migrator.registerMigration("v3: rollouts") { db in
            try db.create(table: "rollout") { table in
                table.column("name", .text).notNull()
                table.column("version", .text).notNull()
                table.column("weight", .integer).notNull()
                table.primaryKey(["name", "version"])
            }
        }
        migrator.registerMigration("v4: input routers") { db in
            try db.alter(table: AdapterVersionRecord.databaseTableName) { table in
                table.add(column: "kind", .text).notNull().defaults(to: ArtifactKind.adapter.rawValue)
            }
            try db.alter(table: RouteRecord.databaseTableName) { table in
                table.add(column: "router", .text).notNull().defaults(to: "")
                table.add(column: "minConfidence", .double).notNull().defaults(to: 0)
            }
        }
        migrator.registerMigration("v5: feedback for training") { db in
            try db.create(table: FeedbackRecord.databaseTableName) { table in
                table.autoIncrementedPrimaryKey("id")
                table.column("name", .text).notNull().indexed()
                table.column("text", .text).notNull()
                table.column("label", .text).notNull()
                table.column("at", .datetime).notNull()
            }
        }
        migrator.registerMigration("v6: feedback usage") { db in
            // The bytes every stored text and label take, kept by triggers: checking the total bound on each
            // Feedback must not scan the table.
            try db.execute(sql: """
                CREATE TABLE feedback_usage (id INTEGER PRIMARY KEY CHECK (id = 1), bytes INTEGER NOT NULL);
                INSERT INTO feedback_usage (id, bytes)
                    SELECT 1, COALESCE(SUM(LENGTH(CAST(text AS BLOB)) + LENGTH(CAST(label AS BLOB))), 0) FROM feedback;
                CREATE TRIGGER feedback_added AFTER INSERT ON feedback BEGIN
                    UPDATE feedback_usage SET bytes = bytes + LENGTH(CAST(NEW.text AS BLOB)) + LENGTH(CAST(NEW.label AS BLOB)) WHERE id = 1;
                END;
                CREATE TRIGGER feedback_removed AFTER DELETE ON feedback BEGIN
                    UPDATE feedback_usage SET bytes = bytes - LENGTH(CAST(OLD.text AS BLOB)) - LENGTH(CAST(OLD.label AS BLOB)) WHERE id = 1;
                END;
                """)
        }
        migrator.registerMigration("v7: route blends") { db in
            try db.alter(table: RouteRecord.databaseTableName) { table in
                table.add(column: "blend", .text).notNull().defaults(to: "")
            }
        }
        return migrator
    }

    /// Where the files of the adapter with `sha256` live.
    public func directory(forSHA256 sha256: String) -> String { dataDirectory + "/adapters/" + sha256 }

    /// Copies an adapter directory into the content-addressed store (once per content) and returns its sha256.
    public func importFiles(from source: String) throws(StoreError) -> String {
        let sha256 = try AdapterDigest.sha256(ofAdapterAt: source)
        let destination = directory(forSHA256: sha256)
        let manager = FileManager.default
        if manager.fileExists(atPath: destination) { return sha256 }
        // Copy beside the destination, then rename: a crash never leaves a half-written adapter under its hash.
        let staging = dataDirectory + "/adapters/.incoming-" + UUID().uuidString
        do {
            try manager.createDirectory(atPath: staging, withIntermediateDirectories: true)
            for file in ArtifactKind.of(directory: source).files where manager.fileExists(atPath: source + "/" + file) {
                try manager.copyItem(atPath: source + "/" + file, toPath: staging + "/" + file)
            }
            try manager.moveItem(atPath: staging, toPath: destination)
        } catch {
            try? manager.removeItem(atPath: staging)
            if manager.fileExists(atPath: destination) { return sha256 }
            throw Self.copyFailure(error, source: source, store: dataDirectory + "/adapters")
        }
        return sha256
    }

    /// What a failed copy into the store means: a full disk or an unwritable store names the store's directory, not
    /// the source, which was read fine.
    static func copyFailure(_ error: any Error, source: String, store: String) -> StoreError {
        let nsError = error as NSError
        if FileSystemFailure.isOutOfSpace(error) { return .noSpace(directory: store) }
        let posix = FileSystemFailure.posixCode(of: error)
        let writeCodes = CocoaError.Code.fileWriteUnknown.rawValue...CocoaError.Code.fileWriteVolumeReadOnly.rawValue
        if posix == EROFS || (nsError.domain == NSCocoaErrorDomain && writeCodes.contains(nsError.code)) {
            return .unwritable(directory: store, reason: error.localizedDescription)
        }
        return .unreadable(path: source, reason: error.localizedDescription)
    }

    /// Deletes the content-addressed files of `sha256` unless a registered, non-failed version uses them.
    public func removeFilesIfUnused(sha256: String) throws(StoreError) {
        let used = try read { db in
            try AdapterVersionRecord.filter(Column("sha256") == sha256 && Column("state") != AdapterState.failed.rawValue).fetchCount(db) > 0
        }
        if !used { try? FileManager.default.removeItem(atPath: directory(forSHA256: sha256)) }
    }

    /// Registers a version; a name's first version (no version of the name active) is active at once. Registering
    /// the same contents again returns the existing record; other contents under a registered (name, version) are
    /// a conflict.
    public func register(_ record: AdapterVersionRecord, actor: String) throws(StoreError) -> AdapterVersionRecord {
        try AdapterName.check(record.name, field: "name")
        try AdapterName.check(record.version, field: "version")
        return try write { db in
            if let existing = try AdapterVersionRecord.fetchOne(db, key: ["name": record.name, "version": record.version]) {
                guard existing.sha256 == record.sha256 else {
                    throw StoreError.conflict(name: record.name, version: record.version, existingSHA256: existing.sha256)
                }
                if existing.state != .failed || record.state == .failed { return existing }
            }
            var record = record
            // The first version's activation commits with its registration: as two writes, a worker killed between
            // them left a name with a version and none active, answering NOT_FOUND until someone activated it.
            let first = try record.state != .failed && Self.activeCount(of: record.name, db) == 0
            if first {
                record.state = .active
                record.activatedAt = Date()
            }
            try record.save(db)
            var entry = HistoryRecord(
                name: record.name, version: record.version, action: record.state == .failed ? .refused : .loaded,
                actor: actor, reason: "from \(record.source), sha256 \(record.sha256.prefix(12))")
            try entry.insert(db)
            if first {
                var activation = HistoryRecord(name: record.name, version: record.version, action: .activated, actor: actor, reason: "first version of '\(record.name)'")
                try activation.insert(db)
            }
            return record
        }
    }

    private static func activeCount(of name: String, _ db: Database) throws -> Int {
        try AdapterVersionRecord.filter(Column("name") == name && Column("state") == AdapterState.active.rawValue).fetchCount(db)
    }

    /// Makes (name, version) the active version atomically; the previously active one becomes retired.
    @discardableResult
    public func activate(name: String, version: String, actor: String, reason: String, action: LifecycleAction = .activated) throws(StoreError) -> AdapterVersionRecord {
        try write { db in
            guard var target = try AdapterVersionRecord.fetchOne(db, key: ["name": name, "version": version]) else {
                throw StoreError.notFound(name: name, version: version)
            }
            guard target.state != .failed else {
                throw StoreError.invalidTransition(name: name, version: version, from: .failed, to: .active)
            }
            if target.state == .active { return target }
            try db.execute(sql: "UPDATE adapter_version SET state = ? WHERE name = ? AND state = ?", arguments: [AdapterState.retired, name, AdapterState.active])
            target.state = .active
            target.activatedAt = Date()
            try target.update(db)
            var entry = HistoryRecord(name: name, version: version, action: action, actor: actor, reason: reason)
            try entry.insert(db)
            return target
        }
    }

    /// Returns `name` to the version that was active before the current one.
    @discardableResult
    public func rollback(name: String, actor: String, reason: String) throws(StoreError) -> AdapterVersionRecord {
        let candidate: AdapterVersionRecord? = try read { db in
            try AdapterVersionRecord
                .filter(Column("name") == name && Column("state") == AdapterState.retired.rawValue && Column("activatedAt") != nil)
                .order(Column("activatedAt").desc)
                .fetchOne(db)
        }
        guard let candidate else { throw .nothingToRollBackTo(name: name) }
        return try activate(name: name, version: candidate.version, actor: actor, reason: reason, action: .rolledBack)
    }

    /// Removes a version from the registry (its files stay while another version shares them). When it was the
    /// active one, the newest remaining version becomes active in the same transaction and is returned.
    @discardableResult
    public func remove(name: String, version: String, actor: String) throws(StoreError) -> AdapterVersionRecord? {
        try write { db in
            guard let removed = try AdapterVersionRecord.fetchOne(db, key: ["name": name, "version": version]) else {
                throw StoreError.notFound(name: name, version: version)
            }
            try removed.delete(db)
            var entry = HistoryRecord(name: name, version: version, action: .unloaded, actor: actor, reason: "")
            try entry.insert(db)
            guard removed.state == .active else { return nil }
            return try Self.promoteNewest(of: name, actor: actor, reason: "the active version was unloaded", db)
        }
    }

    /// Makes the newest non-failed version of `name` active when none is. Registries written before registration
    /// and activation shared a transaction can hold such names.
    /// Returns the versions it activated.
    public func activateOrphanedNames(actor: String) throws(StoreError) -> [AdapterVersionRecord] {
        try write { db in
            let names = try String.fetchAll(db, sql: """
                SELECT DISTINCT name FROM adapter_version WHERE state != ? AND name NOT IN
                (SELECT name FROM adapter_version WHERE state = ?)
                """, arguments: [AdapterState.failed.rawValue, AdapterState.active.rawValue])
            return try names.compactMap { name in
                try Self.promoteNewest(of: name, actor: actor, reason: "no version of '\(name)' was active", db)
            }
        }
    }

    private static func promoteNewest(of name: String, actor: String, reason: String, _ db: Database) throws -> AdapterVersionRecord? {
        guard var newest = try AdapterVersionRecord
            .filter(Column("name") == name && Column("state") != AdapterState.failed.rawValue)
            .order(Column("createdAt").desc, Column("version").desc)
            .fetchOne(db) else { return nil }
        newest.state = .active
        newest.activatedAt = Date()
        try newest.update(db)
        var entry = HistoryRecord(name: name, version: newest.version, action: .activated, actor: actor, reason: reason)
        try entry.insert(db)
        return newest
    }

    /// Ends `name`'s rollout because its `canary` broke the guard policy: the split, the canary's session pins and
    /// the audit entry change in one transaction, so a kill leaves either the rollout or its rollback, never half.
    public func endRollout(name: String, canary: String, reason: String) throws(StoreError) {
        try write { db in
            try RolloutSplitRecord.filter(RolloutSplitRecord.Columns.name == name).deleteAll(db)
            try SessionRecord.filter(Column("adapter") == name && Column("version") == canary).deleteAll(db)
            var entry = HistoryRecord(name: name, version: canary, action: .rolledBack, actor: "guard", reason: reason)
            try entry.insert(db)
        }
    }

    /// Removes what a worker killed mid-load can leave under `{data}/adapters`: half-copied `.incoming-*`
    /// directories, and content directories no registered version refers to (copied, then killed before the
    /// version was registered). Call it before the worker loads anything. Returns the directories removed.
    public func removeUnreferencedFiles() throws(StoreError) -> [String] {
        let referenced = Set(try read { db in
            try String.fetchAll(db, sql: "SELECT DISTINCT sha256 FROM adapter_version WHERE state != ?", arguments: [AdapterState.failed.rawValue])
        })
        let root = dataDirectory + "/adapters"
        var removed: [String] = []
        for item in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [] where !referenced.contains(item) {
            // Only what this store writes there: staging directories and 64-hex-digit content directories.
            let isContent = item.count == 64 && item.allSatisfy(\.isHexDigit)
            guard item.hasPrefix(".incoming-") || isContent else { continue }
            if (try? FileManager.default.removeItem(atPath: root + "/" + item)) != nil { removed.append(item) }
        }
        return removed
    }

    /// Appends an entry to the audit trail.
    public func record(_ entry: HistoryRecord) throws(StoreError) {
        try write { db in
            var entry = entry
            try entry.insert(db)
        }
    }

    /// Every registered version, by name and version.
    public func versions(name: String? = nil) throws(StoreError) -> [AdapterVersionRecord] {
        try read { db in
            var request = AdapterVersionRecord.order(Column("name"), Column("version"))
            if let name { request = request.filter(Column("name") == name) }
            return try request.fetchAll(db)
        }
    }

    /// The audit trail of `name`, oldest first.
    public func history(name: String) throws(StoreError) -> [HistoryRecord] {
        try read { db in
            try HistoryRecord.filter(Column("name") == name).order(Column("id")).fetchAll(db)
        }
    }

    func read<T>(_ body: (Database) throws -> T) throws(StoreError) -> T {
        do {
            return try database.read(body)
        } catch let error as StoreError {
            throw error
        } catch {
            throw .database("\(error)")
        }
    }

    func write<T>(_ body: (Database) throws -> T) throws(StoreError) -> T {
        do {
            return try database.write(body)
        } catch let error as StoreError {
            throw error
        } catch {
            throw .database("\(error)")
        }
    }
}
