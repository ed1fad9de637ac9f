import AdapterTraining
import ArgumentParser
import FederatedLearning
import FleetControl
import Foundation

extension FleetCommand {
    /// `adapterctl fleet federate`: federated training over the fleet.
    struct Federate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Train one adapter from every worker's stored examples (Feedback) without moving them: federated rounds.",
            discussion: """
                Each round the workers train the global adapter on their own examples and send back only the trained \
                tensors; the controller averages them (FFA-LoRA: every LoRA A frozen, so the average is exact). The run's \
                state is in --state (SQLite): the same command again resumes a stopped or killed run. At the end the \
                adapter is written to --out as PEFT files and staged on the workers as --version, not activated \
                (activate it with `fleet rollout` or `adapters activate`).
                """)
        @OptionGroup var connection: Connection
        @Option(help: "Adapter name (the name the workers' examples are stored under).") var name: String
        @Option(help: "The version the result is staged as.") var version: String
        @Option(help: "The classifier's labels, comma-separated (a new adapter).") var labels: String?
        @Option(help: "Continue this version of the name: every worker starts from its copy (the same files), its labels, rank and targets.")
        var baseVersion: String?
        @Option(help: "Rounds.") var rounds = 10
        @Option(help: "Workers matching key=value[|value],… (id=… selects ids); default: every online worker.") var select = ""
        @Option(help: "Workers trained per round (0: every worker that accepts).") var clientsPerRound = 0
        @Option(help: "Epochs over each worker's examples per round.") var localEpochs = RoundPlan(labels: []).localEpochs
        @Option(help: "Examples a worker must hold for the name to take part.") var minExamples = 10
        @Option(help: "LoRA rank.") var rank = 8
        @Option(help: "LoRA alpha.") var alpha = 16.0
        @Option(help: "Adapted modules, comma-separated.") var targets = "query,value"
        @Option(help: "Local learning rate.") var lr = RoundPlan(labels: []).learningRate
        @Option(help: "Local batch size.") var batch = 16
        @Option(help: "Seed of the first global adapter and the batch orders.") var seed: UInt64 = 0
        @Option(help: "Aggregation: svd (exact mean of the products, re-factored to the rank), ffa (LoRA A frozen, exact) or fedit (A and B averaged apart).") var method = RoundPlan(labels: []).method.rawValue
        @Option(help: "Share of each worker's examples held out for its local accuracy.") var holdout = 0.1
        @Option(help: "Clip each worker's change to this L2 norm (differential privacy; needs --dp-noise).") var dpClip: Double?
        @Option(help: "Gaussian noise multiplier σ (differential privacy; needs --dp-clip).") var dpNoise: Double?
        @Option(help: "The δ the reported ε holds for.") var dpDelta = 1e-5
        @Option(help: "Seconds a round may take; workers not done by then are skipped for it.") var roundTimeout = 600.0
        @Option(help: "Seconds one request to a worker may take.") var workerTimeout = 10.0
        @Option(help: "Where the final adapter's PEFT files go (default: ./NAME-VERSION).") var out: String?
        @Option(help: "ed25519 private key to sign the staging pushes with.") var sign: String?
        @Option(help: "Federation state file (SQLite).") var state = "fleet-federation.sqlite"
        @Flag(help: "End with one JSON line.") var json = false

        func run() async throws {
            try await ReplyPrinter.rpc {
                guard let aggregation = AggregationMethod(rawValue: method) else { throw ValidationError("--method is svd, ffa or fedit, not '\(method)'") }
                guard (dpClip == nil) == (dpNoise == nil) else { throw ValidationError("differential privacy needs both --dp-clip and --dp-noise") }
                guard (labels == nil) != (baseVersion == nil) else { throw ValidationError("give either --labels (a new adapter) or --base-version (continue a version)") }
                var plan = RoundPlan(labels: (labels ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
                plan.baseVersion = baseVersion
                plan.rank = rank
                plan.alpha = alpha
                plan.targets = targets.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                plan.localEpochs = localEpochs
                plan.learningRate = lr
                plan.batchSize = batch
                plan.seed = seed
                plan.method = aggregation
                plan.holdout = holdout
                var settings = FederatedController.Settings(name: name, version: version, outDirectory: out ?? "\(name)-\(version)")
                settings.selector = select
                settings.rounds = rounds
                settings.clientsPerRound = clientsPerRound
                settings.minExamples = minExamples
                settings.roundTimeoutSeconds = roundTimeout
                settings.workerTimeoutSeconds = workerTimeout
                settings.signingKey = sign ?? ""
                if let dpClip, let dpNoise { settings.privacy = DifferentialPrivacy(clip: dpClip, noiseMultiplier: dpNoise, delta: dpDelta) }
                let broker = try connection.login.resolved()
                let quiet = false
                let controller = FederatedController(
                    brokerURL: broker.url, username: broker.username, password: broker.password, tlsCAFile: broker.tlsCAFile,
                    store: try FederationStore(path: state),
                    log: { line in if !quiet { FileHandle.standardError.write(Data((line + "\n").utf8)) } })
                let report = try await controller.start(settings, plan: plan)
                try Self.finish(report, json: json)
            }
        }

        /// Prints the run's end: per-round lines, or with `--json` one line; exits 1 when it was aborted.
        static func finish(_ report: FederatedController.Report, json: Bool) throws {
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(report), as: UTF8.self))
            } else {
                print("\(report.state)\(report.reason.isEmpty ? "" : ": " + report.reason) — \(report.name) \(report.version) in \(report.out)")
                let rows = [["ROUND", "CLIENTS", "EXAMPLES", "BYTES UP", "BYTES DOWN", "MEAN LOCAL ACC", "SKIPPED"]] + report.rounds.map { round in
                    [String(round.round), String(round.clients), String(round.examples), String(round.bytesUp), String(round.bytesDown),
                     round.meanLocalAccuracy.map { String(format: "%.3f", $0) } ?? "-", round.skipped.keys.sorted().joined(separator: ",")]
                }
                print(Table.render(rows))
                if !report.staged.isEmpty { print("staged (not active) on \(report.staged.joined(separator: ", "))") }
                if let epsilon = report.epsilon, let delta = report.delta { print(String(format: "differential privacy: ε = %.3f at δ = %g", epsilon, delta)) }
            }
            if report.state == "aborted" { throw ExitCode(1) }
        }
    }
}
