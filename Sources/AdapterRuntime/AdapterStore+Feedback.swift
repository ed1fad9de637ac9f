import AdapterFormats
import GRDB

/// Labelled texts kept for on-device training (`Feedback`), bounded per name, in names and in bytes.
extension AdapterStore {
    /// Stores a labelled text for `name`, keeping at most `limits.perName` per name (the oldest go first); returns
    /// how many are stored for it. Throws `StoreError.limit` when the text would take the store past
    /// `limits.maxBytes`, or a new name past `limits.maxNames`: one client's texts must not fill the disk.
    public func addFeedback(name: String, text: String, label: String, limits: FeedbackLimits) throws(StoreError) -> Int {
        try AdapterName.check(name, field: "name")
        let bytes = text.utf8.count + label.utf8.count
        return try write { db in
            let used = try Int.fetchOne(db, sql: "SELECT bytes FROM feedback_usage WHERE id = 1") ?? 0
            guard bytes <= limits.maxBytes - used else {
                throw StoreError.limit(what: "bytes of feedback (\(used) stored, this text and label \(bytes))", limit: limits.maxBytes)
            }
            if try FeedbackRecord.filter(Column("name") == name).isEmpty(db) {
                let names = try Int.fetchOne(db, sql: "SELECT COUNT(DISTINCT name) FROM feedback") ?? 0
                guard names < limits.maxNames else { throw StoreError.limit(what: "names with feedback", limit: limits.maxNames) }
            }
            var record = FeedbackRecord(name: name, text: text, label: label)
            try record.insert(db)
            try db.execute(sql: """
                DELETE FROM feedback WHERE name = ? AND id NOT IN (SELECT id FROM feedback WHERE name = ? ORDER BY id DESC LIMIT ?)
                """, arguments: [name, name, max(1, limits.perName)])
            return try FeedbackRecord.filter(Column("name") == name).fetchCount(db)
        }
    }

    /// The labelled texts stored for `name`, oldest first.
    public func feedback(name: String) throws(StoreError) -> [FeedbackRecord] {
        try read { db in try FeedbackRecord.filter(Column("name") == name).order(Column("id")).fetchAll(db) }
    }

}
