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
    @Option(help: ArgumentHelp("A weighted part of a blend instead of --adapter, NAME:WEIGHT (repeat it, 2 to 8 parts).", valueName: "NAME:WEIGHT"))
    var blend: [String] = []
    @Option(help: "Session id (affinity).") var session: String?
    @Option(help: "Topic levels below …/infer, e.g. thermostat/t1.") var subtopic: String?

    @Argument(help: "Texts to send.") var texts: [String]

    func validate() throws {
        guard blend.isEmpty || (adapter == nil && version == nil) else { throw ValidationError("give --adapter or --blend, not both") }
        for part in blend where Self.blendPart(part) == nil { throw ValidationError("--blend takes NAME:WEIGHT with a finite WEIGHT, not '\(part)'") }
    }

    /// `NAME:WEIGHT`, split; nil when it is not one.
    static func blendPart(_ text: String) -> Adapterd_V1_WeightedAdapter? {
        guard let colon = text.lastIndex(of: ":"), let weight = Float(text[text.index(after: colon)...]), weight.isFinite, colon > text.startIndex else { return nil }
        var part = Adapterd_V1_WeightedAdapter()
        (part.name, part.weight) = (String(text[..<colon]), weight)
        return part
    }

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
                request.adapters = blend.compactMap(Self.blendPart)
                if let session { request.session = session }
                let reply = try await client.infer(request, subtopic: subtopic, timeout: connection.replyTimeout)
                do {
                    try ReplyPrinter.finish(reply, json: connection.json) { reply in
                        var who = reply.adapter.isEmpty ? "base model" : "\(reply.adapter) \(reply.version)"
                        if !reply.blend.isEmpty { who = "blend of " + reply.blend.map { "\($0.name) \($0.version) ×\($0.weight)" }.joined(separator: " + ") }
                        if !reply.routedBy.isEmpty { who += " (by \(reply.routedBy))" }
                        if !reply.router.isEmpty {
                            who += String(format: " [router %@ %@: %@ %.2f]", reply.router, reply.routerVersion, reply.routerChoice, reply.routerConfidence)
                        }
                        var what = reply.label.isEmpty ? "embedding[\(reply.embedding.count)]" : reply.label
                        if reply.hasValue { what = String(format: "value %.4f", reply.value) }
                        if !reply.labels.isEmpty { what = reply.labels.joined(separator: ",") }
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
