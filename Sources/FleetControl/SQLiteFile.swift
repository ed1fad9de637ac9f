import CSQLite
import Foundation

/// A SQLite file of the fleet controller's, over SQLite's C API (adapterctl links no database framework): statements
/// with bound values, transactions, and the one-controller claim (a process id and a heartbeat in a table's row 1).
/// A class with a lock: one connection shared by a controller's tasks.
final class SQLiteFile: @unchecked Sendable {
    /// A value bound to a statement.
    enum Value {
        case text(String)
        case integer(Int64)
        case real(Double)
        case blob(Data)
    }

    /// One result row.
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

    let path: String
    private let lock = NSLock()
    private var database: OpaquePointer?

    /// Opens (creating) the file at `path`, in WAL mode.
    init(path: String) throws(FleetError) {
        self.path = path
        guard sqlite3_open_v2(path, &database, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nil) == SQLITE_OK else {
            let message = database.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close(database)
            throw .state(path: path, reason: message)
        }
        sqlite3_busy_timeout(database, 5_000)
        try execute("PRAGMA journal_mode = WAL")
    }

    deinit { sqlite3_close(database) }

    /// Claims `table`'s row 1 (columns `owner_pid`, `heartbeat`) for this process; refused while another live
    /// controller holds it (a heartbeat younger than `stale` from a process that still exists).
    func claim(table: String, stale: TimeInterval) throws(FleetError) {
        let me = Int64(getpid())
        try transaction { () throws(FleetError) in
            let holder = try query("SELECT owner_pid, heartbeat FROM \(table) WHERE id = 1", []) { ($0.integer(0), $0.real(1)) }.first
            if let (pid, beat) = holder, pid != 0, pid != me, kill(pid_t(pid), 0) == 0, Date().timeIntervalSince1970 - beat < stale {
                throw FleetError.claimed(pid: Int(pid))
            }
            try run("UPDATE \(table) SET owner_pid = ?, heartbeat = ? WHERE id = 1", [.integer(me), .real(Date().timeIntervalSince1970)])
        }
    }

    /// Renews this process's claim on `table`.
    func heartbeat(table: String) throws(FleetError) {
        try run("UPDATE \(table) SET heartbeat = ? WHERE id = 1 AND owner_pid = ?", [.real(Date().timeIntervalSince1970), .integer(Int64(getpid()))])
    }

    /// Gives this process's claim on `table` up.
    func release(table: String) throws(FleetError) {
        try run("UPDATE \(table) SET owner_pid = 0 WHERE id = 1 AND owner_pid = ?", [.integer(Int64(getpid()))])
    }

    func execute(_ sql: String) throws(FleetError) {
        lock.lock()
        defer { lock.unlock() }
        guard sqlite3_exec(database, sql, nil, nil, nil) == SQLITE_OK else { throw .state(path: path, reason: String(cString: sqlite3_errmsg(database))) }
    }

    func transaction(_ body: () throws(FleetError) -> Void) throws(FleetError) {
        try execute("BEGIN IMMEDIATE")
        do {
            try body()
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
        try execute("COMMIT")
    }

    func run(_ sql: String, _ values: [Value]) throws(FleetError) {
        _ = try query(sql, values) { _ in () }
    }

    func query<T>(_ sql: String, _ values: [Value], _ read: (Row) -> T) throws(FleetError) -> [T] {
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
