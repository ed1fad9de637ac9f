// A worker's RPC server over its real services (model, SQLite registry, push inbox, trainings), driven without a
// broker: each fuzz input is one request to one control method, and the invariant is "no trap, one typed reply".
import AdapterdAPI
import AdapterdClient
import AdapterdCore
import Foundation
import Logging
import MQTTRPC

/// Runs fuzzed request bodies through `RPCServer.handle` (decoding, the handler, error mapping, the reply) and
/// stops the process (a libFuzzer finding) when a request is not answered with exactly one reply carrying a status.
public final class HandlerHarness: @unchecked Sendable {
    /// Replies the server published, under a lock: the server publishes from its own tasks.
    private final class Replies: RPCTransport, @unchecked Sendable {
        private let lock = NSLock()
        private var published: [(topic: String, payload: [UInt8], properties: MQTTProperties)] = []

        func send(_ topic: String, payload: [UInt8], properties: MQTTProperties) {
            lock.withLock { published.append((topic, payload, properties)) }
        }

        func take() -> [(topic: String, payload: [UInt8], properties: MQTTProperties)] {
            lock.withLock {
                defer { published.removeAll() }
                return published
            }
        }
    }

    private let server: RPCServer
    private let replies = Replies()
    private let services: WorkerServices
    private var sent: UInt64 = 0
    static let replyTopic = "fuzz/replies"

    /// Services over the model in `ADAPTERD_MODEL` with a fresh data directory, limits small enough that a fuzzed
    /// training or feedback stays cheap, and the intent reference adapter loaded as `intent` v1 (when found).
    public init() {
        let data = NSTemporaryDirectory() + "adapterd-fuzz-\(getpid())"
        try? FileManager.default.removeItem(atPath: data)
        let model = ProcessInfo.processInfo.environment["ADAPTERD_MODEL"] ?? "models/all-MiniLM-L6-v2"
        var configuration = WorkerConfiguration(brokerURL: "mqtt://127.0.0.1:1", workerID: "fuzz", modelDirectory: model, dataDirectory: data)
        configuration.trainingMaxSeconds = 2
        configuration.trainingMemoryBudgetBytes = 8 << 20
        configuration.feedbackLimits.maxBytes = 1 << 20
        configuration.maxPushBytes = 1 << 20
        // LoadAdapter may read under the repository (scripts/fuzz runs the targets from a scratch directory).
        let root = ProcessInfo.processInfo.environment["ADAPTERD_ROOT"] ?? FileManager.default.currentDirectoryPath
        configuration.adapterRoots = [root]
        var logger = Logger(label: "fuzz")
        logger.logLevel = .critical
        do {
            services = try WorkerServices(configuration: configuration, logger: logger) { _ in }
        } catch {
            fatalError("fuzz harness: cannot start the worker's services: \(error)")
        }
        let replies = replies
        server = RPCServer(
            topics: Topics(worker: "fuzz"), workerID: "fuzz", inference: services.inferenceMethod, control: services.controlMethods,
            stats: services.stats, duplicateWindow: .seconds(60), publishResults: false, logger: logger, transport: replies)
        let intent = root + "/Tests/AdapterEngineTests/Fixtures/minilm-lora/adapters/intent"
        if FileManager.default.fileExists(atPath: intent) {
            wait { [services] in _ = try? await services.registry.load(name: "intent", version: "v1", path: intent, actor: "fuzz") }
        }
    }

    /// Sends `data` to control method `method`: a first byte 0 means a protobuf body (the rest), anything else a
    /// JSON body (all of it). Traps (a finding) unless exactly one reply with a status comes back.
    public func run(method: String, _ data: UnsafePointer<UInt8>, _ size: Int) {
        let bytes = Array(UnsafeBufferPointer(start: data, count: size))
        let protobuf = bytes.first == 0
        let payload = protobuf ? Array(bytes.dropFirst()) : bytes
        sent += 1
        var properties = MQTTProperties(contentType: protobuf ? "application/x-protobuf" : "application/json")
        properties.responseTopic = Self.replyTopic
        // A new correlation per input: a repeated one would be answered from the reply cache, not the handler.
        properties.correlationData = Array(String(sent).utf8)
        let message = MQTTMessage(topic: "adapterd/v1/fuzz/control/\(method)", payload: payload, qos: 1, properties: properties)
        wait { [server] in await server.handle(message) }
        let published = replies.take()
        guard published.count == 1, let reply = published.first, reply.topic == Self.replyTopic else {
            fatalError("invariant: \(method) published \(published.count) messages for one request: \(published.map(\.topic))")
        }
        guard let status = reply.properties.userProperties.first(where: { $0.name == "status" })?.value,
              RPCStatus.allCases.contains(where: { $0.name == status }) else {
            fatalError("invariant: \(method)'s reply has no status property")
        }
        let encoding: RPCEncoding = reply.properties.contentType == "application/x-protobuf" ? .protobuf : .json
        guard let decoded = try? RPCCodec.decode(Adapterd_V1_UnloadAdapterReply.self, from: reply.payload, encoding: encoding),
              RPCStatus(decoded.status).name == status else {
            fatalError("invariant: \(method)'s reply body does not carry its status \(status)")
        }
    }

    /// Blocks the fuzzer's thread (not a Swift concurrency thread) until `body` has run.
    private func wait(_ body: @escaping @Sendable () async -> Void) {
        let done = DispatchSemaphore(value: 0)
        Task {
            await body()
            done.signal()
        }
        done.wait()
    }
}

/// The harness and the methods a handler target drives (set once by `runHandlerFuzzer` before the driver starts).
nonisolated(unsafe) private var harness: HandlerHarness?
nonisolated(unsafe) private var fuzzedMethods: [String] = []

/// Runs libFuzzer over `methods` through a `HandlerHarness`: with one method every input is its request; with
/// several, an input's first byte picks the method and the rest is the request.
public func runHandlerFuzzer(methods: [String]) -> Never {
    precondition(!methods.isEmpty, "a handler fuzzer needs a method")
    fuzzedMethods = methods
    harness = HandlerHarness()
    var (argc, argv) = (CommandLine.argc, Optional(CommandLine.unsafeArgv))
    exit(runDriver(&argc, &argv, fuzzOneInput))
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let harness else { return 0 }
    if fuzzedMethods.count == 1 {
        harness.run(method: fuzzedMethods[0], data, size)
    } else if size > 0 {
        harness.run(method: fuzzedMethods[Int(data[0]) % fuzzedMethods.count], data + 1, size - 1)
    }
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>, _ body: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> CInt
