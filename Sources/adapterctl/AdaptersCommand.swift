import AdapterdAPI
import AdapterdClient
import ArgumentParser
import Foundation

/// `adapterctl adapters …`.
struct AdaptersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adapters", abstract: "List, load and unload a worker's adapters.",
        subcommands: [List.self, Load.self, Unload.self, Activate.self, Rollback.self, History.self, Push.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List loaded adapter versions.")
        @OptionGroup var connection: BrokerOptions

        func run() async throws {
            try await ReplyPrinter.rpc {
                try await connection.call("ListAdapters", Adapterd_V1_ListAdaptersRequest(), as: Adapterd_V1_ListAdaptersReply.self) { reply in
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
                try await connection.call("LoadAdapter", request, as: Adapterd_V1_LoadAdapterReply.self) { reply in
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
                try await connection.call("UnloadAdapter", request, as: Adapterd_V1_UnloadAdapterReply.self) { _ in "unloaded \(name) \(version ?? "(all versions)")" }
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
                try await connection.call("ActivateAdapter", request, as: Adapterd_V1_ActivateAdapterReply.self) { "active: \($0.adapter.name) \($0.adapter.version)" }
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
                try await connection.call("Rollback", request, as: Adapterd_V1_RollbackReply.self) { "active: \($0.adapter.name) \($0.adapter.version)" }
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
                try await connection.call("History", request, as: Adapterd_V1_HistoryReply.self) { reply in
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
            try await connection.call("GetStatus", Adapterd_V1_GetStatusRequest(), as: Adapterd_V1_GetStatusReply.self) { reply in
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
