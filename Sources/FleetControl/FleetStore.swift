import Foundation

/// The fleet controller's state in a SQLite file: the rollout's plan and policy, and each worker's step, written
/// after every step so a controller killed at any point resumes where it was (`adapterctl fleet resume`), and read
/// by `fleet status` and `fleet abort` from another shell. One controller at a time: the one that runs a rollout
/// holds an exclusive claim (its process id and a heartbeat) that another controller refuses to override. A finished
/// rollout (completed or aborted) moves to the file's history when the next one starts, with its report.
///
/// Over `SQLiteFile` (SQLite's C API, a handful of statements): adapterctl is a client and links no database framework.
public final class FleetStore: @unchecked Sendable {
    /// Where a worker stands in the rollout.
    public enum WorkerState: String, Sendable, Codable, CaseIterable {
        case pending, pushed, activated, verified, rolledBack = "rolled back", failed, skipped
    }

    /// One worker's row.
    public struct WorkerRow: Sendable, Equatable, Codable {
        public var worker: String
        public var wave: Int
        public var state: WorkerState
        /// The version that was active before the rollout touched the worker ("" when none).
        public var previous: String
        public var detail: String
    }

    /// The rollout's row.
    public struct RolloutRow: Sendable, Equatable {
        public var name: String
        public var version: String
        public var adapterDirectory: String
        /// "running", "completed", "aborting" (asked from another shell), "aborted".
        public var state: String
        public var reason: String
        public var bytesSent: Int64
        /// The policy, JSON.
        public var policy: Data
        public var signingKey: String
    }

    /// One finished rollout in the history.
    public struct HistoryRow: Sendable, Equatable {
        public var name: String
        public var version: String
        /// "completed" or "aborted".
        public var state: String
        public var reason: String
        /// When the next rollout archived it (unix seconds).
        public var archivedAt: Double
        /// Its final report, JSON (`FleetController.Report`).
        public var report: Data
    }

    /// The state file.
    public let path: String
    private let file: SQLiteFile

    /// Opens (creating) the state file at `path`.
    public init(path: String) throws(FleetError) {
        self.path = path
        file = try SQLiteFile(path: path)
        try file.execute("""
            CREATE TABLE IF NOT EXISTS rollout (id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT NOT NULL, version TEXT NOT NULL,
              adapter TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL, bytes_sent INTEGER NOT NULL, policy BLOB NOT NULL,
              signing_key TEXT NOT NULL, owner_pid INTEGER NOT NULL DEFAULT 0, heartbeat REAL NOT NULL DEFAULT 0)
            """)
        try file.execute("""
            CREATE TABLE IF NOT EXISTS worker (worker TEXT PRIMARY KEY, wave INTEGER NOT NULL, state TEXT NOT NULL,
              previous TEXT NOT NULL, detail TEXT NOT NULL)
            """)
        try file.execute("CREATE TABLE IF NOT EXISTS verdict (wave INTEGER PRIMARY KEY, verdict BLOB NOT NULL)")
        try file.execute("""
            CREATE TABLE IF NOT EXISTS history (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, version TEXT NOT NULL,
              state TEXT NOT NULL, reason TEXT NOT NULL, archived_at REAL NOT NULL, report BLOB NOT NULL)
            """)
    }

    /// Starts a new rollout: in an empty state file, or after a finished one, which `archive` (its final report,
    /// JSON) moves to the history first. A running or aborting rollout is never replaced.
    public func create(_ rollout: RolloutRow, workers: [WorkerRow], archive: () throws -> Data) throws(FleetError) {
        let current = try self.rollout()
        if let current, current.state != "completed" && current.state != "aborted" {
            throw .state(path: path, reason: "it holds a rollout that is still \(current.state) (\(current.name) \(current.version)); resume it (fleet resume), abort it (fleet abort), or use another --state file")
        }
        let report: Data
        do {
            report = current == nil ? Data() : try archive()
        } catch {
            throw .state(path: path, reason: "cannot write the finished rollout's report to the history: \(error)")
        }
        try file.transaction { () throws(FleetError) in
            if let current {
                try file.run("INSERT INTO history (name, version, state, reason, archived_at, report) VALUES (?, ?, ?, ?, ?, ?)",
                        [.text(current.name), .text(current.version), .text(current.state), .text(current.reason),
                         .real(Date().timeIntervalSince1970), .blob(report)])
                try file.run("DELETE FROM rollout", [])
                try file.run("DELETE FROM worker", [])
                try file.run("DELETE FROM verdict", [])
            }
            try file.run("INSERT INTO rollout (id, name, version, adapter, state, reason, bytes_sent, policy, signing_key) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [.text(rollout.name), .text(rollout.version), .text(rollout.adapterDirectory), .text(rollout.state), .text(rollout.reason),
                     .integer(rollout.bytesSent), .blob(rollout.policy), .text(rollout.signingKey)])
            for row in workers { try save(row) }
        }
    }

    /// The rollout, if the file holds one.
    public func rollout() throws(FleetError) -> RolloutRow? {
        try file.query("SELECT name, version, adapter, state, reason, bytes_sent, policy, signing_key FROM rollout WHERE id = 1", []) { row in
            RolloutRow(name: row.text(0), version: row.text(1), adapterDirectory: row.text(2), state: row.text(3), reason: row.text(4),
                       bytesSent: row.integer(5), policy: row.blob(6), signingKey: row.text(7))
        }.first
    }

    /// Finished rollouts moved to the history, oldest first.
    public func history() throws(FleetError) -> [HistoryRow] {
        try file.query("SELECT name, version, state, reason, archived_at, report FROM history ORDER BY id", []) { row in
            HistoryRow(name: row.text(0), version: row.text(1), state: row.text(2), reason: row.text(3), archivedAt: row.real(4), report: row.blob(5))
        }
    }

    /// Keeps wave `wave`'s verdict (JSON), replacing an earlier one of the same wave.
    public func saveVerdict(wave: Int, _ verdict: Data) throws(FleetError) {
        try file.run("INSERT OR REPLACE INTO verdict (wave, verdict) VALUES (?, ?)", [.integer(Int64(wave)), .blob(verdict)])
    }

    /// The waves' verdicts (JSON), by wave.
    public func verdicts() throws(FleetError) -> [(wave: Int, verdict: Data)] {
        try file.query("SELECT wave, verdict FROM verdict ORDER BY wave", []) { (Int($0.integer(0)), $0.blob(1)) }
    }

    /// Every worker, by wave then id.
    public func workers() throws(FleetError) -> [WorkerRow] {
        try file.query("SELECT worker, wave, state, previous, detail FROM worker ORDER BY wave, worker", []) { row in
            WorkerRow(worker: row.text(0), wave: Int(row.integer(1)), state: WorkerState(rawValue: row.text(2)) ?? .failed, previous: row.text(3), detail: row.text(4))
        }
    }

    /// Writes one worker's row.
    public func save(_ row: WorkerRow) throws(FleetError) {
        try file.run("INSERT OR REPLACE INTO worker (worker, wave, state, previous, detail) VALUES (?, ?, ?, ?, ?)",
                [.text(row.worker), .integer(Int64(row.wave)), .text(row.state.rawValue), .text(row.previous), .text(row.detail)])
    }

    /// Sets the rollout's state and reason.
    public func setState(_ state: String, reason: String) throws(FleetError) {
        try file.run("UPDATE rollout SET state = ?, reason = ? WHERE id = 1", [.text(state), .text(reason)])
    }

    /// Adds to the bytes pushed.
    public func addBytesSent(_ bytes: Int64) throws(FleetError) {
        try file.run("UPDATE rollout SET bytes_sent = bytes_sent + ? WHERE id = 1", [.integer(bytes)])
    }

    /// Claims the rollout for this process; refused while another live controller holds it (a heartbeat younger
    /// than `stale` from a process that still exists).
    public func claim(stale: TimeInterval = 30) throws(FleetError) {
        try file.claim(table: "rollout", stale: stale)
    }

    /// Renews this process's claim.
    public func heartbeat() throws(FleetError) {
        try file.heartbeat(table: "rollout")
    }

    /// Gives the claim up.
    public func release() throws(FleetError) {
        try file.release(table: "rollout")
    }
}
