import AdapterdClient
import ArgumentParser
import CanaryJudging
import FleetControl
import Foundation

/// `adapterctl fleet …`: staged, health-gated rollouts over many workers.
struct FleetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet", abstract: "Discover workers and roll adapter versions out over them in health-gated waves.",
        subcommands: [List.self, Rollout.self, Resume.self, Status.self, Abort.self, History.self, Federate.self])

    /// The broker, as every fleet command reaches it.
    struct Connection: ParsableArguments {
        @OptionGroup var login: BrokerLogin

        func controller(store: FleetStore, quiet: Bool) throws -> FleetController {
            let broker = try login.resolved()
            let log: @Sendable (String) -> Void = { line in
                if !quiet { FileHandle.standardError.write(Data((line + "\n").utf8)) }
            }
            return FleetController(
                brokerURL: broker.url, username: broker.username, password: broker.password, tlsCAFile: broker.tlsCAFile,
                store: store, log: log)
        }
    }

    /// Prints the end of a rollout: a table, or with `--json` one line; exits 1 when it was aborted.
    static func finish(_ report: FleetController.Report, json: Bool) throws {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print("\(report.state)\(report.reason.isEmpty ? "" : ": " + report.reason) — \(report.bytesSent) bytes pushed")
            let rows = [["WORKER", "ACTIVE", "OUTCOME"]] + report.workers.sorted { $0.key < $1.key }.map { [$0.key, $0.value.active.isEmpty ? "-" : $0.value.active, $0.value.outcome] }
            print(Table.render(rows))
        }
        if report.state == "aborted" { throw ExitCode(1) }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the workers the broker's retained statuses show, with labels and versions.")
        @OptionGroup var connection: Connection
        @Option(help: "Only workers matching key=value[|value],… (id=… selects ids).") var select = ""
        @Flag(help: "One JSON array.") var json = false

        func run() async throws {
            try await ReplyPrinter.rpc {
                let selector = try FleetSelector(select)
                let store = try FleetStore(path: ":memory:")
                let watcher = try await FleetWatcher(options: try connection.controller(store: store, quiet: true).watcherOptions)
                defer { watcher.close() }
                let workers = try await watcher.discover(selector)
                if json {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.sortedKeys]
                    print(String(decoding: try encoder.encode(workers), as: UTF8.self))
                    return
                }
                let rows = [["WORKER", "LABELS", "PRECISION", "ADAPTERS"]] + workers.map { status in
                    [status.worker, (status.labels ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","),
                     status.precision ?? "-", (status.adapters ?? []).map { "\($0.name)@\($0.active)" }.joined(separator: " ")]
                }
                print(Table.render(rows))
            }
        }
    }

    struct Rollout: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Roll an adapter version out in waves, judged between waves, rolled back on any threshold.",
            discussion: "The plan and every worker's step are kept in --state (SQLite): a controller stopped or killed resumes with `fleet resume`.")
        @OptionGroup var connection: Connection
        @Option(help: "Adapter name.") var name: String
        @Option(help: "The version to roll out.") var version: String
        @Option(help: "Local PEFT adapter directory.") var adapter: String
        @Option(help: "Workers matching key=value[|value],… (id=… selects ids); default: every online worker.") var select = ""
        @Option(help: "ed25519 private key to sign the pushes with.") var sign: String?
        @Option(help: "Rollout state file (SQLite).") var state = "fleet-rollout.sqlite"
        @Option(help: "Workers in the first wave.") var canary = 1
        @Option(help: "Each wave is this many times the one before.") var growth = 2.0
        @Option(help: "Requests a wave's workers must serve with the new version before it is judged (default \(CanaryThresholds().minRequests)).") var minRequests: Int?
        @Option(help: "Seconds a wave must serve at least.") var soak = 5.0
        @Option(help: "Seconds a wave may take to reach --min-requests.") var waveTimeout = 120.0
        @Option(help: "Abort above this error-rate increase over the previous version, 0…1 (default \(CanaryThresholds().maxErrorRateIncrease)).")
        var maxErrorRateIncrease: Double?
        @Option(help: "Abort above this p95 latency ratio to the previous version (default \(CanaryThresholds().maxLatencyRatio)).")
        var maxLatencyRatio: Double?
        @Option(help: "Abort above this drift of the predicted-label distribution, total variation 0…1 (default \(CanaryThresholds().maxLabelDrift)).")
        var maxLabelDrift: Double?
        @Option(help: "Abort above this drop of the mean top-1 confidence (default \(CanaryThresholds().maxConfidenceDrop)).")
        var maxConfidenceDrop: Double?
        @Option(help: "Fraction of the new version's requests each worker also runs on the version it replaced (off the reply path).")
        var shadow: Double?
        @Option(help: "Abort when less than this share of shadow-compared requests got the replaced version's label, 0…1 (needs --shadow).")
        var minAgreement: Double?
        @Option(help: "Seconds a worker's push and activation may take.") var workerTimeout = 30.0
        @Option(help: "Attempts at an unreachable worker before --offline applies.") var retries = 2
        @Option(help: "An unreachable worker is skipped (skip) or aborts the rollout (fail).") var offline = "skip"
        @Flag(help: "End with one JSON line.") var json = false

        func run() async throws {
            try await ReplyPrinter.rpc {
                var policy = RolloutPolicy()
                policy.canary = canary
                policy.growth = growth
                policy.minRequests = minRequests ?? policy.minRequests
                policy.soakSeconds = soak
                policy.waveTimeoutSeconds = waveTimeout
                policy.maxErrorRateIncrease = maxErrorRateIncrease ?? policy.maxErrorRateIncrease
                policy.maxLatencyRatio = maxLatencyRatio ?? policy.maxLatencyRatio
                policy.maxLabelDrift = maxLabelDrift ?? policy.maxLabelDrift
                policy.maxConfidenceDrop = maxConfidenceDrop ?? policy.maxConfidenceDrop
                policy.shadow = shadow
                policy.minAgreement = minAgreement
                policy.workerTimeoutSeconds = workerTimeout
                policy.retries = retries
                policy.offline = offline
                let store = try FleetStore(path: state)
                let report = try await connection.controller(store: store, quiet: false).start(
                    name: name, version: version, adapterDirectory: adapter, selector: try FleetSelector(select), policy: policy, signingKey: sign)
                try FleetCommand.finish(report, json: json)
            }
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume the rollout a state file holds (after its controller stopped).")
        @OptionGroup var connection: Connection
        @Option(help: "Rollout state file (SQLite).") var state = "fleet-rollout.sqlite"
        @Flag(help: "End with one JSON line.") var json = false

        func run() async throws {
            try await ReplyPrinter.rpc {
                let store = try FleetStore(path: state)
                try FleetCommand.finish(try await connection.controller(store: store, quiet: false).resume(), json: json)
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show where a rollout stands (works while its controller runs).")
        @Option(help: "Rollout state file (SQLite).") var state = "fleet-rollout.sqlite"
        @Flag(help: "One JSON line.") var json = false

        func run() async throws {
            try await ReplyPrinter.rpc {
                let report = try FleetController.report(store: try FleetStore(path: state))
                try FleetCommand.finish(report, json: json)
            }
        }
    }

    struct Abort: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Ask a running rollout to stop and roll back every worker it touched.")
        @Option(help: "Rollout state file (SQLite).") var state = "fleet-rollout.sqlite"
        @Option(help: "Why, for the workers' History and the report.") var reason = "aborted by the operator"

        func run() async throws {
            try await ReplyPrinter.rpc {
                try FleetController.requestAbort(store: try FleetStore(path: state), reason: reason)
                print("abort requested: the controller rolls back at its next step (or `fleet resume` does)")
            }
        }
    }

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the rollouts a state file has run, oldest first, with their verdicts and reasons.")
        @Option(help: "Rollout state file (SQLite).") var state = "fleet-rollout.sqlite"
        @Flag(help: "One JSON line per rollout.") var json = false

        func run() async throws {
            try await ReplyPrinter.rpc {
                let store = try FleetStore(path: state)
                var entries = try store.history().map { row in
                    FleetHistoryEntry(
                        name: row.name, version: row.version, state: row.state, reason: row.reason,
                        report: try? JSONDecoder().decode(FleetController.Report.self, from: row.report))
                }
                if let current = try store.rollout() {
                    entries.append(FleetHistoryEntry(
                        name: current.name, version: current.version, state: current.state, reason: current.reason,
                        report: try? FleetController.report(store: store)))
                }
                if entries.isEmpty { print("no rollouts in \(state)") }
                for entry in entries {
                    if json {
                        print(String(decoding: try JSONEncoder().encode(entry), as: UTF8.self))
                        continue
                    }
                    print("\(entry.name) \(entry.version): \(entry.state)" + (entry.reason.isEmpty ? "" : " — \(entry.reason)"))
                    for (wave, verdict) in (entry.report?.verdicts ?? []).enumerated() {
                        for criterion in verdict.criteria { print("  wave \(wave + 1): \(criterion.summary)") }
                    }
                }
            }
        }
    }
}

/// One rollout in `adapterctl fleet history`.
struct FleetHistoryEntry: Codable {
    var name: String
    var version: String
    var state: String
    var reason: String
    var report: FleetController.Report?
}
