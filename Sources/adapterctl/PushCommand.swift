import AdapterEngine
import AdapterFormats
import AdapterdAPI
import AdapterdClient
import ArgumentParser
import Foundation
import MQTTRPC

extension AdaptersCommand {
    /// `adapterctl adapters push DIR --name N --version V [--sign KEY]`.
    struct Push: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Push a PEFT adapter directory to a worker over MQTT (resumable, optionally signed), then stage it.")
        @OptionGroup var connection: BrokerOptions
        @Option(help: "Adapter name.") var name: String
        @Option(help: "Adapter version.") var version: String
        @Option(help: "ed25519 private key file to sign the push with (adapterctl keys generate).") var sign: String?
        @Option(name: .customLong("base-model"), help: "Base model directory the adapter was trained on; its fingerprint goes into the manifest and a worker serving other weights refuses the push.")
        var baseModel: String?
        @Option(name: .customLong("chunk-size"), help: "Bytes per chunk (1024…4194304).") var chunkSize = 256 << 10
        @Option(help: "Chunks in flight at once.") var window = 8
        @Flag(help: "Activate the version once it is staged.") var activate = false
        @Option(help: "Why, for the audit trail.") var reason = ""
        @Argument(help: "Local adapter directory (adapter_config.json, adapter_model.safetensors, optional labels.json).") var directory: String

        func run() async throws {
            try await ReplyPrinter.rpc {
                let payload = try AdapterBundle.encode(directory: directory)
                let fingerprint = try baseModel.map { try AdapterDigest.sha256(ofFile: $0 + "/model.safetensors") } ?? ""
                let client = try await connection.connect()
                defer { client.close() }
                let pusher = AdapterPusher(client: client, chunkSize: chunkSize, window: window, timeout: connection.replyTimeout)
                let manifest = pusher.manifest(payload: payload, name: name, version: version, baseFingerprint: fingerprint)
                try manifest.validate()
                let signature = try sign.map { try SigningKeys.sign(manifest, with: SigningKeys.privateKey(file: $0)) } ?? []
                // With --json the output is one line for a script: no progress bar.
                let bar = connection.json ? nil : ProgressBar(label: "\(name) \(version)")
                let outcome: AdapterPusher.Outcome
                do {
                    outcome = try await pusher.push(payload, manifest: manifest, signature: signature, activate: activate, reason: reason) { done, total in
                        bar?.update(done, of: total)
                    }
                    bar?.finish()
                } catch let error as RPCError {
                    bar?.finish()
                    FileHandle.standardError.write(Data("adapterctl: \(error.status.name): \(error.message)\n".utf8))
                    throw ExitCode(1)
                }
                let adapter = outcome.reply.adapter
                let resumed = outcome.chunksResumed > 0 ? ", resumed: \(outcome.chunksResumed) chunks were already there" : ""
                let signer = outcome.reply.keyID.isEmpty ? "unsigned" : "signed by \(outcome.reply.keyID)"
                let sent = outcome.delta
                    ? "\(outcome.bytesSent) of \(manifest.size) bytes sent (\(outcome.piecesSent) of \(outcome.piecesTotal) pieces; the worker held the rest)"
                    : "\(outcome.bytesSent) of \(manifest.size) bytes sent"
                if connection.json {
                    // The commit's reply with what travelled.
                    var object = (try? JSONSerialization.jsonObject(with: Data(((try? outcome.reply.jsonString()) ?? "{}").utf8))) as? [String: Any] ?? [:]
                    object["bytesSent"] = outcome.bytesSent
                    object["bundleBytes"] = manifest.size
                    object["delta"] = outcome.delta
                    object["piecesSent"] = outcome.piecesSent
                    object["piecesTotal"] = outcome.piecesTotal
                    let line = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                    print(String(decoding: line, as: UTF8.self))
                } else {
                    print("pushed \(adapter.name) \(adapter.version) (\(adapter.state), \(sent)\(resumed), sha256 \(adapter.sha256.prefix(12)), \(signer))")
                }
            }
        }
    }
}

/// A one-line progress bar on standard error, redrawn in place on a terminal and printed every 25% otherwise.
final class ProgressBar: @unchecked Sendable {
    private let label: String
    private let lock = NSLock()
    private let interactive = isatty(STDERR_FILENO) == 1
    private let started = ContinuousClock.now
    private var lastQuarter = -1

    init(label: String) { self.label = label }

    func update(_ done: Int64, of total: Int64) {
        lock.withLock {
            let fraction = total > 0 ? Double(done) / Double(total) : 1
            let elapsed = ContinuousClock.now - started
            let seconds = max(elapsed.inSeconds, 1e-3)
            let filled = Int(fraction * 30)
            let line = String(format: "%@ [%@%@] %3.0f%% %.1f/%.1f MB %.1f MB/s", label, String(repeating: "#", count: filled),
                              String(repeating: ".", count: 30 - filled), fraction * 100, Double(done) / 1e6, Double(total) / 1e6, Double(done) / 1e6 / seconds)
            if interactive {
                FileHandle.standardError.write(Data(("\r" + line).utf8))
            } else if Int(fraction * 4) > lastQuarter {
                lastQuarter = Int(fraction * 4)
                FileHandle.standardError.write(Data((line + "\n").utf8))
            }
        }
    }

    func finish() {
        if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
