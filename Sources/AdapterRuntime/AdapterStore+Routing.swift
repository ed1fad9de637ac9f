import AdapterFormats
import Foundation
import GRDB

/// What decides which version a request gets: traffic splits, routes and session pins.
extension AdapterStore {
    // MARK: Rollouts

    /// Replaces `name`'s traffic split (nil ends it).
    public func save(rollout: Rollout?, name: String) throws(StoreError) {
        try write { db in
            try RolloutSplitRecord.filter(RolloutSplitRecord.Columns.name == name).deleteAll(db)
            for split in rollout?.splits ?? [] {
                try RolloutSplitRecord(name: name, version: split.version, weight: split.weight).insert(db)
            }
        }
    }

    /// Every stored split, by name.
    public func rollouts() throws(StoreError) -> [String: Rollout] {
        let rows = try read { db in try RolloutSplitRecord.fetchAll(db) }
        var byName: [String: [String: Int]] = [:]
        for row in rows { byName[row.name, default: [:]][row.version] = row.weight }
        return byName.compactMapValues { $0 }.reduce(into: [:]) { result, item in
            if let rollout = Rollout(name: item.key, splits: item.value) { result[item.key] = rollout }
        }
    }

    // MARK: Routes

    /// Creates or replaces the route called `route.name`.
    public func save(route: RouteRecord) throws(StoreError) {
        try AdapterName.check(route.name, field: "route name")
        // A route that serves a blend names no single adapter.
        if route.blend.isEmpty || !route.adapter.isEmpty { try AdapterName.check(route.adapter, field: "adapter") }
        try write { db in try route.save(db) }
    }

    /// Deletes a route.
    public func deleteRoute(name: String) throws(StoreError) {
        let deleted = try write { db in try RouteRecord.deleteOne(db, key: name) }
        guard deleted else { throw .notFound(name: "route " + name, version: nil) }
    }

    /// Every route, highest priority first, then by name.
    public func routes() throws(StoreError) -> [RouteRecord] {
        try read { db in try RouteRecord.order(Column("priority").desc, Column("name")).fetchAll(db) }
    }

    // MARK: Session affinity

    /// Writes several pins in one transaction.
    public func pin(_ records: [SessionRecord]) throws(StoreError) {
        try write { db in
            for record in records { try record.save(db) }
        }
    }

    /// Every pin that has not expired.
    public func sessions(now: Date = Date()) throws(StoreError) -> [SessionRecord] {
        try read { db in try SessionRecord.filter(Column("expiresAt") > now).fetchAll(db) }
    }

    /// Removes every pin of `session`; returns how many there were.
    @discardableResult
    public func clear(session: String) throws(StoreError) -> Int {
        try write { db in try SessionRecord.filter(Column("session") == session).deleteAll(db) }
    }

    /// Removes expired pins.
    @discardableResult
    public func pruneSessions(now: Date = Date()) throws(StoreError) -> Int {
        try write { db in try SessionRecord.filter(Column("expiresAt") <= now).deleteAll(db) }
    }

}
