import AdapterdAPI
import AdapterdClient
import AdapterFormats
import AdapterTraining
import ArgumentParser
import Foundation

/// `adapterctl adapters …`.
struct AdaptersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adapters", abstract: "List, load and unload a worker's adapters.",
        subcommands: [List.self, Load.self, Unload.self, Activate.self, Rollback.self, History.self, Push.self, Train.self, Feedback.self, CancelTraining.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List loaded adapter versions.")
        @OptionGroup var connection: BrokerOptions

        func run() async throws {
            try await ReplyPrinter.rpc {
                try await connection.call(.listAdapters, Adapterd_V1_ListAdaptersRequest()) { reply in
                    let rows = [["NAME", "VERSION", "STATE", "BYTES", "RANK", "SHA256"]] + reply.adapters.map {
                        [$0.name, $0.version, $0.state, String($0.bytes), String($0.rank), String($0.sha256.prefix(12))]
                    }
                    return Table.render(rows)
                }
            }
        }
    }

    struct Load: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Load a PEFT adapter directory that is on the worker.")
        @OptionGroup var connection: BrokerOptions
        @Option(help: "Adapter name.") var name: String
        @Option(help: "Adapter version.") var version: String = "v1"
        @Argument(help: "Adapter directory, as a path on the worker.") var path: String

        func run() async throws {
            try await ReplyPrinter.rpc {
                var request = Adapterd_V1_LoadAdapterRequest()
                request.name = name
                request.version = version
                request.path = path
                try await connection.call(.loadAdapter, request) { reply in
                    "loaded \(reply.adapter.name) \(reply.adapter.version) (\(reply.adapter.state), \(reply.adapter.bytes) bytes, sha256 \(reply.adapter.sha256.prefix(12)))"
                }
            }
        }
    }

    struct Unload: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Unload one version, or every version of a name.")
        @OptionGroup var connection: BrokerOptions
        @Option(help: "Adapter name.") var name: String
        @Option(help: "Adapter version (default: all versions).") var version: String?

        func run() async throws {
            try await ReplyPrinter.rpc {
                var request = Adapterd_V1_UnloadAdapterRequest()
                request.name = name
                request.version = version ?? ""
                try await connection.call(.unloadAdapter, request) { _ in "unloaded \(name) \(version ?? "(all versions)")" }
            }
        }
    }
}

extension AdaptersCommand {
    struct Activate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a loaded version the active one.")
        @OptionGroup var connection: BrokerOptions
        @Option(help: "Adapter name.") var name: String
        @Option(help: "Version to activate.") var version: String
        @Option(help: "Why, for the audit trail.") var reason: String = ""

        func run() async throws {
            try await ReplyPrinter.rpc {
                var request = Adapterd_V1_ActivateAdapterRequest()
                request.name = name
                request.version = version
                request.reason = reason
                try await connection.call(.activateAdapter, request) { "active: \($0.adapter.name) \($0.adapter.version)" }
            }
        }
    }

    struct Rollback: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Return a name to its previously active version.")
        @OptionGroup var connection: BrokerOptions
        @Option(help: "Adapter name.") var name: String
        @Option(help: "Why, for the audit trail.") var reason: String = ""

        func run() async throws {
            try await ReplyPrinter.rpc {
                var request = Adapterd_V1_RollbackRequest()
                request.name = name
                request.reason = reason
                try await connection.call(.rollback, request) { "active: \($0.adapter.name) \($0.adapter.version)" }
            }
        }
    }

    struct History: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a name's audit trail.")
        @OptionGroup var connection: BrokerOptions
        @Option(help: "Adapter name.") var name: String

        func run() async throws {
            try await ReplyPrinter.rpc {
                var request = Adapterd_V1_HistoryRequest()
                request.name = name
                try await connection.call(.history, request) { reply in
                    Table.render([["AT", "VERSION", "ACTION", "BY", "WHY"]] + reply.events.map { [$0.at, $0.version, $0.action, $0.actor, $0.reason] })
                }
            }
        }
    }
}

/// `adapterctl status`.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show a worker's status.")
    @OptionGroup var connection: BrokerOptions

    func run() async throws {
        try await ReplyPrinter.rpc {
            try await connection.call(.getStatus, Adapterd_V1_GetStatusRequest()) { reply in
                """
                worker \(reply.worker): \(reply.state), adapterd \(reply.version), model \(reply.model)\(reply.precision.isEmpty ? "" : ", \(reply.precision) on \(reply.kernelPath) kernels")
                up \(String(format: "%.0f", reply.uptimeSeconds)) s since \(reply.startedAt); \(reply.adaptersLoaded) adapter versions loaded
                requests: \(reply.requestsTotal) run, \(reply.requestsFailed) failed, \(reply.inFlight) in flight
                """
            }
        }
    }
}

/// Left-aligned text columns.
enum Table {
    static func render(_ rows: [[String]]) -> String {
        let widths = (0..<(rows.first?.count ?? 0)).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}

extension AdaptersCommand {
    /// `adapterctl adapters train`: TrainAdapter on the worker.
    struct Train: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Train a new version on the worker from labelled examples (and the feedback stored there).",
            discussion: "Examples are JSON Lines of {\"text\", \"label\"}. The worker trains on one idle-priority core and stages the version when done; --wait follows it to the end.")
        @OptionGroup var connection: BrokerOptions
        @Option(help: "Adapter name.") var name: String
        @Option(help: "The new version.") var version: String
        @Option(help: "Training examples, JSON Lines of {\"text\", \"label\"}.") var examples: String?
        @Option(help: "Held-out examples for the accuracy figure.") var eval: String?
        @Flag(help: "Add the examples stored with `adapters feedback` for this name.") var useFeedback = false
        @Flag(help: "Activate the version once it is staged.") var activate = false
        @Option(help: "LoRA rank.") var rank: Int32 = 8
        @Option(help: "LoRA alpha.") var alpha: Double = 16
        @Option(help: "Adapted modules, comma-separated.") var targets = "query,value"
        @Option(help: "Passes over the examples.") var epochs: Int32 = 10
        @Option(help: "Peak learning rate.") var lr: Float = 1e-3
        @Option(help: "Examples per step.") var batch: Int32 = 16
        @Option(help: "Seed of the initial weights and the batch order.") var seed: UInt64 = 0
        @Flag(help: "Wait until the training has ended and print its figures.") var wait = false

        func validate() throws {
            guard examples != nil || useFeedback else { throw ValidationError("give --examples FILE, --use-feedback, or both") }
        }

        func run() async throws {
            var request = Adapterd_V1_TrainAdapterRequest()
            request.name = name
            request.version = version
            do {
                request.examples = try examples.map(Self.read) ?? []
                request.eval = try eval.map(Self.read) ?? []
            } catch {
                FileHandle.standardError.write(Data("adapterctl: \(error)\n".utf8))
                throw ExitCode(2)
            }
            request.useFeedback = useFeedback
            request.activate = activate
            request.rank = rank
            request.alpha = alpha
            request.targets = targets.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            request.epochs = epochs
            request.learningRate = lr
            request.batchSize = batch
            request.seed = seed
            try await ReplyPrinter.rpc {
                try await connection.call(.trainAdapter, request) {
                    "training \(name) \(version): \($0.examples) examples, labels \($0.labels.joined(separator: ", ")), \($0.totalSteps) steps, about \($0.estimatedBytes >> 20) MiB"
                }
            }
            guard wait else { return }
            let client = try await connection.connect()
            defer { client.close() }
            var history = Adapterd_V1_HistoryRequest()
            history.name = name
            // The audit trail records how the training ended; it is polled, which needs nothing but the RPC.
            while true {
                try await Task.sleep(for: .seconds(1))
                let trail = try await client.control(.history, history, timeout: connection.replyTimeout)
                guard let end = trail.events.last(where: { $0.version == version && LifecycleAction(rawValue: $0.action)?.endsTraining == true }) else { continue }
                print("\(end.action): \(end.reason)")
                if end.action != LifecycleAction.trained.rawValue { throw ExitCode(1) }
                return
            }
        }

        /// The examples of a JSON Lines file, as the request carries them.
        static func read(_ path: String) throws -> [Adapterd_V1_LabelledText] {
            try TrainingExample.read(jsonl: path).map {
                var example = Adapterd_V1_LabelledText()
                example.text = $0.text
                example.label = $0.label
                return example
            }
        }
    }

    /// `adapterctl adapters feedback`: Feedback on the worker.
    struct Feedback: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Store a text and its correct label on the worker, for later trainings.")
        @OptionGroup var connection: BrokerOptions
        @Option(help: "Adapter name.") var name: String
        @Option(help: "The correct label.") var label: String
        @Argument(help: "The text.") var text: String

        func run() async throws {
            try await ReplyPrinter.rpc {
                var request = Adapterd_V1_FeedbackRequest()
                request.name = name
                request.text = text
                request.label = label
                try await connection.call(.feedback, request) { "stored: \($0.stored) examples for \(name)" }
            }
        }
    }

    /// `adapterctl adapters cancel-training`: CancelTraining on the worker.
    struct CancelTraining: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "cancel-training", abstract: "Stop a training on the worker; nothing of it is staged.")
        @OptionGroup var connection: BrokerOptions
        @Option(help: "Adapter name.") var name: String
        @Option(help: "The version being trained.") var version: String

        func run() async throws {
            try await ReplyPrinter.rpc {
                var request = Adapterd_V1_CancelTrainingRequest()
                request.name = name
                request.version = version
                try await connection.call(.cancelTraining, request) { _ in "cancelled: \(name) \(version)" }
            }
        }
    }
}
