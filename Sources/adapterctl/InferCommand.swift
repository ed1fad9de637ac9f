import AdapterdAPI
import AdapterdClient
import ArgumentParser
import Foundation

/// `adapterctl infer`: one inference request per text through the broker.
struct InferCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "infer", abstract: "Send inference requests to a worker.")

    @OptionGroup var connection: BrokerOptions

    @Option(help: "Adapter name (default: the worker's routing).") var adapter: String?
    @Option(help: "Adapter version (default: the active one).") var version: String?
    @Option(help: "Session id (affinity).") var session: String?
    @Option(help: "Topic levels below …/infer, e.g. thermostat/t1.") var subtopic: String?

    @Argument(help: "Texts to send.") var texts: [String]

    func run() async throws {
        try await ReplyPrinter.rpc {
            let client = try await connection.connect()
            defer { client.close() }
            var failed: ExitCode?
            for text in texts {
                var request = Adapterd_V1_InferRequest()
                request.text = text
                if let adapter { request.adapter = adapter }
                if let version { request.version = version }
                if let session { request.session = session }
                let reply = try await client.infer(request, subtopic: subtopic, timeout: connection.replyTimeout)
                do {
                    try ReplyPrinter.finish(reply, json: connection.json) { reply in
                        var who = reply.adapter.isEmpty ? "base model" : "\(reply.adapter) \(reply.version)"
                        if !reply.routedBy.isEmpty { who += " (by \(reply.routedBy))" }
                        if !reply.router.isEmpty {
                            who += String(format: " [router %@ %@: %@ %.2f]", reply.router, reply.routerVersion, reply.routerChoice, reply.routerConfidence)
                        }
                        let what = reply.label.isEmpty ? "embedding[\(reply.embedding.count)]" : reply.label
                        return "\(what)\t\(who)\t\(String(format: "%.1f", reply.latencyMs)) ms\t\(text)"
                    }
                } catch let exit as ExitCode {
                    failed = exit
                }
            }
            if let failed { throw failed }
        }
    }
}
