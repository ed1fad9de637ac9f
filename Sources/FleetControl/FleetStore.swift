import CSQLite
import Foundation

/// The fleet controller's state in a SQLite file: the rollout's plan and policy, and each worker's step, written
/// after every step so a controller killed at any point resumes where it was (`adapterctl fleet resume`), and read
/// by `fleet status` and `fleet abort` from another shell. One controller at a time: the one that runs a rollout
/// holds an exclusive claim (its process id and a heartbeat) that another controller refuses to override. A finished
/// rollout (completed or aborted) moves to the file's history when the next one starts, with its report.
///
/// SQLite's C API directly, a handful of statements: adapterctl is a client and links no database framework.
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
    private let lock = NSLock()
    private var database: OpaquePointer?

    /// Opens (creating) the state file at `path`.
    public init(path: String) throws(FleetError) {
        self.path = path
        guard sqlite3_open_v2(path, &database, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nil) == SQLITE_OK else {
            let message = database.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close(database)
            throw .state(path: path, reason: message)
        }
        sqlite3_busy_timeout(database, 5_000)
        try execute("PRAGMA journal_mode = WAL")
        try execute("""
            CREATE TABLE IF NOT EXISTS rollout (id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT NOT NULL, version TEXT NOT NULL,
              adapter TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL, bytes_sent INTEGER NOT NULL, policy BLOB NOT NULL,
              signing_key TEXT NOT NULL, owner_pid INTEGER NOT NULL DEFAULT 0, heartbeat REAL NOT NULL DEFAULT 0)
            """)
        try execute("""
            CREATE TABLE IF NOT EXISTS worker (worker TEXT PRIMARY KEY, wave INTEGER NOT NULL, state TEXT NOT NULL,
              previous TEXT NOT NULL, detail TEXT NOT NULL)
            """)
        try execute("CREATE TABLE IF NOT EXISTS verdict (wave INTEGER PRIMARY KEY, verdict BLOB NOT NULL)")
        try execute("""
            CREATE TABLE IF NOT EXISTS history (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, version TEXT NOT NULL,
              state TEXT NOT NULL, reason TEXT NOT NULL, archived_at REAL NOT NULL, report BLOB NOT NULL)
            """)
    }

    deinit { sqlite3_close(database) }

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
        try transaction { () throws(FleetError) in
            if let current {
                try run("INSERT INTO history (name, version, state, reason, archived_at, report) VALUES (?, ?, ?, ?, ?, ?)",
                        [.text(current.name), .text(current.version), .text(current.state), .text(current.reason),
                         .real(Date().timeIntervalSince1970), .blob(report)])
                try run("DELETE FROM rollout", [])
                try run("DELETE FROM worker", [])
                try run("DELETE FROM verdict", [])
            }
            try run("INSERT INTO rollout (id, name, version, adapter, state, reason, bytes_sent, policy, signing_key) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [.text(rollout.name), .text(rollout.version), .text(rollout.adapterDirectory), .text(rollout.state), .text(rollout.reason),
                     .integer(rollout.bytesSent), .blob(rollout.policy), .text(rollout.signingKey)])
            for row in workers { try save(row) }
        }
    }

    /// The rollout, if the file holds one.
    public func rollout() throws(FleetError) -> RolloutRow? {
        try query("SELECT name, version, adapter, state, reason, bytes_sent, policy, signing_key FROM rollout WHERE id = 1", []) { row in
            RolloutRow(name: row.text(0), version: row.text(1), adapterDirectory: row.text(2), state: row.text(3), reason: row.text(4),
                       bytesSent: row.integer(5), policy: row.blob(6), signingKey: row.text(7))
        }.first
    }

    /// Finished rollouts moved to the history, oldest first.
    public func history() throws(FleetError) -> [HistoryRow] {
        try query("SELECT name, version, state, reason, archived_at, report FROM history ORDER BY id", []) { row in
            HistoryRow(name: row.text(0), version: row.text(1), state: row.text(2), reason: row.text(3), archivedAt: row.real(4), report: row.blob(5))
        }
    }

    /// Keeps wave `wave`'s verdict (JSON), replacing an earlier one of the same wave.
    public func saveVerdict(wave: Int, _ verdict: Data) throws(FleetError) {
        try run("INSERT OR REPLACE INTO verdict (wave, verdict) VALUES (?, ?)", [.integer(Int64(wave)), .blob(verdict)])
    }

    /// The waves' verdicts (JSON), by wave.
    public func verdicts() throws(FleetError) -> [(wave: Int, verdict: Data)] {
        try query("SELECT wave, verdict FROM verdict ORDER BY wave", []) { (Int($0.integer(0)), $0.blob(1)) }
    }

    /// Every worker, by wave then id.
    public func workers() throws(FleetError) -> [WorkerRow] {
        try query("SELECT worker, wave, state, previous, detail FROM worker ORDER BY wave, worker", []) { row in
            WorkerRow(worker: row.text(0), wave: Int(row.integer(1)), state: WorkerState(rawValue: row.text(2)) ?? .failed, previous: row.text(3), detail: row.text(4))
        }
    }

    /// Writes one worker's row.
    public func save(_ row: WorkerRow) throws(FleetError) {
        try run("INSERT OR REPLACE INTO worker (worker, wave, state, previous, detail) VALUES (?, ?, ?, ?, ?)",
                [.text(row.worker), .integer(Int64(row.wave)), .text(row.state.rawValue), .text(row.previous), .text(row.detail)])
    }

    /// Sets the rollout's state and reason.
    public func setState(_ state: String, reason: String) throws(FleetError) {
        try run("UPDATE rollout SET state = ?, reason = ? WHERE id = 1", [.text(state), .text(reason)])
    }

    /// Adds to the bytes pushed.
    public func addBytesSent(_ bytes: Int64) throws(FleetError) {
        try run("UPDATE rollout SET bytes_sent = bytes_sent + ? WHERE id = 1", [.integer(bytes)])
    }

    /// Claims the rollout for this process; refused while another live controller holds it (a heartbeat younger
    /// than `stale` from a process that still exists).
    public func claim(stale: TimeInterval = 30) throws(FleetError) {
        let me = Int64(getpid())
        try transaction { () throws(FleetError) in
            let holder = try query("SELECT owner_pid, heartbeat FROM rollout WHERE id = 1", []) { ($0.integer(0), $0.real(1)) }.first
            if let (pid, beat) = holder, pid != 0, pid != me, kill(pid_t(pid), 0) == 0, Date().timeIntervalSince1970 - beat < stale {
                throw FleetError.claimed(pid: Int(pid))
            }
            try run("UPDATE rollout SET owner_pid = ?, heartbeat = ? WHERE id = 1", [.integer(me), .real(Date().timeIntervalSince1970)])
        }
    }

    /// Renews this process's claim.
    public func heartbeat() throws(FleetError) {
        try run("UPDATE rollout SET heartbeat = ? WHERE id = 1 AND owner_pid = ?", [.real(Date().timeIntervalSince1970), .integer(Int64(getpid()))])
    }

    /// Gives the claim up.
    public func release() throws(FleetError) {
        try run("UPDATE rollout SET owner_pid = 0 WHERE id = 1 AND owner_pid = ?", [.integer(Int64(getpid()))])
    }

    // MARK: SQLite

    enum Value {
        case text(String)
        case integer(Int64)
        case real(Double)
        case blob(Data)
    }

    struct Row {
        let statement: OpaquePointer
        func text(_ column: Int32) -> String { sqlite3_column_text(statement, column).map { String(cString: $0) } ?? "" }
        func integer(_ column: Int32) -> Int64 { sqlite3_column_int64(statement, column) }
        func real(_ column: Int32) -> Double { sqlite3_column_double(statement, column) }
        func blob(_ column: Int32) -> Data {
            guard let bytes = sqlite3_column_blob(statement, column) else { return Data() }
            return Data(bytes: bytes, count: Int(sqlite3_column_bytes(statement, column)))
        }
    }

    private func execute(_ sql: String) throws(FleetError) {
        lock.lock()
        defer { lock.unlock() }
        guard sqlite3_exec(database, sql, nil, nil, nil) == SQLITE_OK else { throw .state(path: path, reason: String(cString: sqlite3_errmsg(database))) }
    }

    private func transaction(_ body: () throws(FleetError) -> Void) throws(FleetError) {
        try execute("BEGIN IMMEDIATE")
        do {
            try body()
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
        try execute("COMMIT")
    }

    private func run(_ sql: String, _ values: [Value]) throws(FleetError) {
        _ = try query(sql, values) { _ in () }
    }

    private func query<T>(_ sql: String, _ values: [Value], _ read: (Row) -> T) throws(FleetError) -> [T] {
        lock.lock()
        defer { lock.unlock() }
        do {
            var statement: OpaquePointer?
            guard sqlite3_prepare_v2(database, sql, -1, &statement, nil) == SQLITE_OK, let statement else {
                throw FleetError.state(path: path, reason: String(cString: sqlite3_errmsg(database)))
            }
            defer { sqlite3_finalize(statement) }
            // SQLITE_TRANSIENT: SQLite copies the bytes before the call returns.
            let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
            for (index, value) in values.enumerated() {
                let position = Int32(index + 1)
                switch value {
                case .text(let text): sqlite3_bind_text(statement, position, text, -1, transient)
                case .integer(let number): sqlite3_bind_int64(statement, position, number)
                case .real(let number): sqlite3_bind_double(statement, position, number)
                case .blob(let data): _ = data.withUnsafeBytes { sqlite3_bind_blob(statement, position, $0.baseAddress, Int32($0.count), transient) }
                }
            }
            var rows: [T] = []
            while true {
                let code = sqlite3_step(statement)
                if code == SQLITE_ROW { rows.append(read(Row(statement: statement))); continue }
                guard code == SQLITE_DONE else { throw FleetError.state(path: path, reason: String(cString: sqlite3_errmsg(database))) }
                return rows
            }
        }
    }
}
