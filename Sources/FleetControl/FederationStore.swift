import Foundation

/// A federated run's state in the controller's SQLite file: the run's settings and plan, the global adapter after
/// the last completed round, and each round's figures, written after every round so a controller killed at any
/// point resumes at the round it was in (`adapterctl fleet federate` again with the same --state). One controller at
/// a time, by the same claim as rollouts. A finished run is replaced when the next one starts.
public final class FederationStore: @unchecked Sendable {
    /// The run's row.
    public struct RunRow: Sendable, Equatable {
        public var name: String
        public var version: String
        /// The run's id, sent with every round.
        public var run: String
        /// "running", "completed", "aborted".
        public var state: String
        public var reason: String
        /// `FederatedController.Settings`, JSON.
        public var settings: Data
        /// Rounds completed.
        public var roundsDone: Int
        /// The global adapter after `roundsDone` rounds (a safetensors file; empty before the first).
        public var global: Data
    }

    /// The state file.
    public let path: String
    private let file: SQLiteFile

    /// Opens (creating) the state file at `path`.
    public init(path: String) throws(FleetError) {
        self.path = path
        file = try SQLiteFile(path: path)
        try file.execute("""
            CREATE TABLE IF NOT EXISTS federation (id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT NOT NULL, version TEXT NOT NULL,
              run TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL, settings BLOB NOT NULL, rounds_done INTEGER NOT NULL,
              global BLOB NOT NULL, owner_pid INTEGER NOT NULL DEFAULT 0, heartbeat REAL NOT NULL DEFAULT 0)
            """)
        try file.execute("CREATE TABLE IF NOT EXISTS federation_round (round INTEGER PRIMARY KEY, report BLOB NOT NULL)")
    }

    /// Starts a new run, replacing a finished one; a running one is refused (resume it, or use another file).
    public func create(_ row: RunRow) throws(FleetError) {
        if let current = try run(), current.state == "running" {
            throw .state(path: path, reason: "it holds a federated run that is still running (\(current.name) \(current.version), \(current.roundsDone) rounds done); run the same command again to resume it, or use another --state file")
        }
        try file.transaction { () throws(FleetError) in
            try file.run("DELETE FROM federation", [])
            try file.run("DELETE FROM federation_round", [])
            try file.run("INSERT INTO federation (id, name, version, run, state, reason, settings, rounds_done, global) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)",
                         [.text(row.name), .text(row.version), .text(row.run), .text(row.state), .text(row.reason), .blob(row.settings),
                          .integer(Int64(row.roundsDone)), .blob(row.global)])
        }
    }

    /// The run, if the file holds one.
    public func run() throws(FleetError) -> RunRow? {
        try file.query("SELECT name, version, run, state, reason, settings, rounds_done, global FROM federation WHERE id = 1", []) { row in
            RunRow(name: row.text(0), version: row.text(1), run: row.text(2), state: row.text(3), reason: row.text(4), settings: row.blob(5),
                   roundsDone: Int(row.integer(6)), global: row.blob(7))
        }.first
    }

    /// Records round `round` as done: its report (JSON) and the new global adapter, together.
    public func completeRound(_ round: Int, report: Data, global: Data) throws(FleetError) {
        try file.transaction { () throws(FleetError) in
            try file.run("INSERT OR REPLACE INTO federation_round (round, report) VALUES (?, ?)", [.integer(Int64(round)), .blob(report)])
            try file.run("UPDATE federation SET rounds_done = ?, global = ? WHERE id = 1", [.integer(Int64(round)), .blob(global)])
        }
    }

    /// Every completed round's report (JSON), by round.
    public func rounds() throws(FleetError) -> [Data] {
        try file.query("SELECT report FROM federation_round ORDER BY round", []) { $0.blob(0) }
    }

    /// Replaces the run's settings (JSON): what the run learned as it started (the base model's fingerprint).
    public func updateSettings(_ settings: Data) throws(FleetError) {
        try file.run("UPDATE federation SET settings = ? WHERE id = 1", [.blob(settings)])
    }

    /// Sets the run's state and reason.
    public func setState(_ state: String, reason: String) throws(FleetError) {
        try file.run("UPDATE federation SET state = ?, reason = ? WHERE id = 1", [.text(state), .text(reason)])
    }

    /// Claims the run for this process; refused while another live controller holds it.
    public func claim(stale: TimeInterval = 30) throws(FleetError) {
        try file.claim(table: "federation", stale: stale)
    }

    /// Renews this process's claim.
    public func heartbeat() throws(FleetError) {
        try file.heartbeat(table: "federation")
    }

    /// Gives the claim up.
    public func release() throws(FleetError) {
        try file.release(table: "federation")
    }
}
