import AdapterdAPI
import AdapterdClient
import AdapterdCore
import AdapterEngine
import AdapterFormats
import InputRouting
import Foundation
import Logging
import MQTTRPC
import ServiceLifecycle
import Testing

/// Shared test support (the `AdapterdTestSupport` target). Real parts for the worker tests: a mosquitto on a free loopback port, the real model, PEFT's adapters.
public enum Harness {
    public static let root: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    public static let modelDirectory = ProcessInfo.processInfo.environment["ADAPTERD_MODEL_DIR"] ?? root + "/models/all-MiniLM-L6-v2"
    public static let referenceDirectory = root + "/Tests/AdapterEngineTests/Fixtures/minilm-lora"

    public static func adapterDirectory(_ name: String) -> String { referenceDirectory + "/adapters/" + name }

    /// A copy of the reference adapter `name` in a new directory, the F32 tensor whose name ends in `suffix` changed
    /// in place by `edit`: the safetensors header and every other byte of its files stay as they were.
    public static func adapterCopy(_ name: String, editing suffix: String, _ edit: (inout [Float]) -> Void) throws -> String {
        let directory = temporaryDirectory()
        for file in ["adapter_config.json", "adapter_model.safetensors", "labels.json"] {
            try FileManager.default.copyItem(atPath: adapterDirectory(name) + "/" + file, toPath: directory + "/" + file)
        }
        let path = directory + "/adapter_model.safetensors"
        let file = try SafeTensorsFile(path: path)
        guard let tensor = file.tensors.values.first(where: { $0.name.hasSuffix(suffix) }) else {
            throw CocoaError(.fileReadCorruptFile, userInfo: [NSLocalizedDescriptionKey: "\(name) has no tensor ending in \(suffix)"])
        }
        let range = (file.dataOffset + tensor.byteRange.lowerBound)..<(file.dataOffset + tensor.byteRange.upperBound)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        var values = bytes[range].withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        edit(&values)
        values.withUnsafeBytes { bytes.replaceSubrange(range, with: $0) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return directory
    }

    public static func temporaryDirectory() -> String {
        let path = NSTemporaryDirectory() + "adapterd-worker-tests-" + UUID().uuidString.prefix(8)
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// A started broker.
    public static func broker(persistent: Bool = false) throws -> MosquittoProcess {
        let broker = try MosquittoProcess(directory: temporaryDirectory() + "/broker", persistent: persistent)
        try broker.start()
        return broker
    }

    public static func configuration(broker: MosquittoProcess, worker: String = "w" + UUID().uuidString.prefix(6).lowercased()) -> WorkerConfiguration {
        configuration(brokerURL: broker.url, worker: worker)
    }

    /// A worker's configuration for the broker at `brokerURL`, with the fixtures' adapters preloaded.
    public static func configuration(brokerURL: String, worker: String = "w" + UUID().uuidString.prefix(6).lowercased()) -> WorkerConfiguration {
        var configuration = WorkerConfiguration(brokerURL: brokerURL, workerID: worker, modelDirectory: modelDirectory, dataDirectory: temporaryDirectory())
        // LoadAdapter reads only under configured roots: the repository's fixtures and the tests' temporary copies.
        configuration.adapterRoots = [root, NSTemporaryDirectory()]
        configuration.preload = [
            ("intent", "v1", adapterDirectory("intent")),
            ("severity", "v1", adapterDirectory("severity")),
        ]
        return configuration
    }

    /// Starts mosquitto on a free loopback port with `settings` (lines after `user` and `listener`), its config
    /// and log in `directory`, and waits until it listens; returns its port and pid (stop it with
    /// `ChildProcess.terminate`). For brokers the tests set up themselves: passwords, ACLs, TLS.
    public static func startMosquitto(settings: String, in directory: String) async throws -> (port: Int, pid: pid_t) {
        let port = try MosquittoProcess.freePort()
        let user = String(cString: getpwuid(geteuid()).pointee.pw_name)
        let config = "user \(user)\nlistener \(port) 127.0.0.1\nlog_dest file \(directory)/mosquitto.log\n" + settings + "\n"
        try config.write(toFile: directory + "/mosquitto.conf", atomically: true, encoding: .utf8)
        guard let executable = MosquittoProcess.executable() else { throw MQTTError.connectionRefused(reason: "mosquitto is not installed") }
        let pid = try ChildProcess.spawn(executable, arguments: ["-c", directory + "/mosquitto.conf"], output: directory + "/stdout.log")
        guard await eventually(timeout: .seconds(5), interval: .milliseconds(20), { MosquittoProcess.accepts(port: port) }) else {
            ChildProcess.terminate(pid, within: .seconds(2))
            let log = (try? String(contentsOfFile: directory + "/mosquitto.log", encoding: .utf8)) ?? ""
            throw MQTTError.connectionRefused(reason: "mosquitto did not start listening: \(log)")
        }
        return (port, pid)
    }

    /// Whether the worker behind `client` answers GetStatus within `timeout`, giving up early once `alive` says its
    /// process has exited: the one readiness poll of the tests (each attempt waits up to 250 ms for its reply).
    public static func answersStatus(_ client: AdapterdClient, within timeout: Duration = .seconds(30), while alive: () -> Bool = { true }) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while alive() {
            let attempt = ContinuousClock.now
            if (try? await client.control(.getStatus, Adapterd_V1_GetStatusRequest(), timeout: .milliseconds(250))) != nil { return true }
            guard ContinuousClock.now < deadline else { return false }
            // A refusal before the broker even took the request (not yet connected) must not spin.
            try? await Task.sleep(until: attempt + .milliseconds(250))
        }
        return false
    }

    /// Whether `condition` holds within `timeout`, checking every `interval`: for states that announce nothing
    /// (a log file, an HTTP endpoint). Callers assert on the result with a message saying what did not happen.
    public static func eventually(timeout: Duration, interval: Duration = .milliseconds(25), _ condition: () async throws -> Bool) async rethrows -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            if try await condition() { return true }
            guard ContinuousClock.now < deadline else { return false }
            try? await Task.sleep(for: interval)
        }
    }

    public static func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
        guard a.count == b.count else { return .infinity }
        return zip(a, b).map { abs($0 - $1) }.max() ?? 0
    }
}

/// A worker running in this process under a ServiceGroup, as adapterd runs it.
public final class RunningWorker: Sendable {
    public let worker: Worker
    let group: ServiceGroup
    let task: Task<Void, any Error>

    /// Starts a worker and waits until it answers `GetStatus` (asked as `username`, when the broker wants a login,
    /// and checking the broker's certificate against `tlsCAFile` over TLS).
    public init(_ configuration: WorkerConfiguration, username: String? = nil, password: String? = nil, tlsCAFile: String? = nil) async throws {
        var logger = Logger(label: "test-worker")
        logger.logLevel = .warning
        worker = try Worker(configuration: configuration, logger: logger)
        group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [worker], logger: logger))
        let group = group
        task = Task { try await group.run() }
        // Ready once it answers a status request.
        let client = try await AdapterdClient(
            brokerURL: configuration.brokerURL, worker: configuration.workerID, username: username, password: password,
            tlsCAFile: tlsCAFile)
        defer { client.close() }
        if await Harness.answersStatus(client, within: .seconds(20)) { return }
        throw MQTTError.timedOut(operation: "waiting for the worker to come up")
    }

    /// Runs `body`, then stops the worker gracefully whether `body` threw or not.
    public func stopping<T>(after body: () async throws -> T) async throws -> T {
        let result: T
        do {
            result = try await body()
        } catch {
            try? await stop()
            throw error
        }
        try await stop()
        return result
    }

    /// Graceful shutdown, as SIGTERM triggers it.
    public func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
    }

    /// A test that ends before `stop()` (a thrown error, a failing `#require`) still stops its worker: cancelling
    /// the group's task cancels its services, which leave their connections and threads.
    deinit { task.cancel() }
}

/// A bare MQTT client that publishes raw payloads and collects what arrives on its reply topic.
public final class RawClient: Sendable {
    public let client: MQTTClient
    public let replyTopic = "test/replies/" + UUID().uuidString.prefix(8)
    private let collector: Collector

    /// What arrived, and who waits for what: each arrival re-checks the waiters' conditions, so a wait ends on the
    /// message that satisfies it, not on a polling tick.
    final class Collector: @unchecked Sendable {
        private struct Waiter {
            let condition: @Sendable ([MQTTMessage]) -> Bool
            let continuation: CheckedContinuation<Bool, Never>
        }

        private let lock = NSLock()
        private var messages: [MQTTMessage] = []
        private var waiters: [UUID: Waiter] = [:]

        func add(_ message: MQTTMessage) {
            let satisfied = lock.withLock { () -> [CheckedContinuation<Bool, Never>] in
                messages.append(message)
                let done = waiters.filter { $0.value.condition(messages) }
                for id in done.keys { waiters[id] = nil }
                return done.values.map(\.continuation)
            }
            for continuation in satisfied { continuation.resume(returning: true) }
        }

        var all: [MQTTMessage] { lock.withLock { messages } }

        /// Whether `condition` held, now or on an arrival within `timeout`.
        func wait(timeout: Duration, for condition: @escaping @Sendable ([MQTTMessage]) -> Bool) async -> Bool {
            let id = UUID()
            return await withTaskGroup(of: Bool.self) { group in
                group.addTask {
                    await withCheckedContinuation { continuation in
                        let already = self.lock.withLock { () -> Bool in
                            if condition(self.messages) { return true }
                            self.waiters[id] = Waiter(condition: condition, continuation: continuation)
                            return false
                        }
                        if already { continuation.resume(returning: true) }
                    }
                }
                group.addTask {
                    try? await Task.sleep(for: timeout)
                    // Time is up: take the waiter back (unless an arrival already resumed it) and say so.
                    self.lock.withLock { self.waiters.removeValue(forKey: id) }?.continuation.resume(returning: false)
                    return false
                }
                let first = await group.next() ?? false
                group.cancelAll()
                self.lock.withLock { self.waiters.removeValue(forKey: id) }?.continuation.resume(returning: first)
                return first
            }
        }
    }

    public convenience init(broker: MosquittoProcess, version: MQTTOptions.ProtocolVersion = .v5) async throws {
        try await self.init(port: broker.port, version: version)
    }

    /// A client of the broker on loopback `port` (one a test started itself).
    public init(port: Int, version: MQTTOptions.ProtocolVersion = .v5) async throws {
        var options = MQTTOptions(host: "127.0.0.1", port: port, clientID: "raw-" + UUID().uuidString.prefix(8))
        options.protocolVersion = version
        client = try MQTTClient(options: options)
        try client.subscribe(replyTopic, qos: 1)
        try await client.connect()
        let collector = Collector()
        self.collector = collector
        let messages = client.messages
        Task { for await message in messages { collector.add(message) } }
    }

    public var received: [MQTTMessage] { collector.all }

    public func publish(_ topic: String, _ payload: [UInt8], contentType: String? = nil, correlation: String? = nil, expiry: UInt32? = nil) throws {
        var properties = MQTTProperties(contentType: contentType, messageExpiry: expiry)
        if client.options.protocolVersion == .v5 {
            properties.responseTopic = replyTopic
            properties.correlationData = correlation.map { Array($0.utf8) }
        }
        try client.publish(topic, payload: payload, qos: 1, properties: properties)
    }

    /// Waits until `count` messages have arrived (or `timeout` passes) and returns them.
    public func waitForReplies(_ count: Int, timeout: Duration = .seconds(20)) async -> [MQTTMessage] {
        _ = await waitUntil(timeout: timeout) { $0.count >= count }
        return received
    }

    /// Waits until what has arrived satisfies `condition`, at most `timeout`; whether it did.
    public func waitUntil(timeout: Duration = .seconds(20), _ condition: @escaping @Sendable ([MQTTMessage]) -> Bool) async -> Bool {
        await collector.wait(timeout: timeout, for: condition)
    }

    public func close() {
        client.disconnect()
        client.finishMessages()
    }
}

/// A worker's services without a broker, for calling handlers and the RPC server directly; events are recorded.
public final class OfflineServices: Sendable {
    public let services: WorkerServices
    private let recorded = EventLog()
    public let dataDirectory: String

    /// Services over the test model with an empty store of their own.
    public init(_ adjust: (inout WorkerConfiguration) -> Void = { _ in }) throws {
        dataDirectory = Harness.temporaryDirectory()
        var configuration = WorkerConfiguration(brokerURL: "mqtt://127.0.0.1:1", workerID: "offline", modelDirectory: Harness.modelDirectory, dataDirectory: dataDirectory)
        configuration.adapterRoots = [Harness.root, NSTemporaryDirectory()]
        adjust(&configuration)
        let recorded = recorded
        services = try WorkerServices(configuration: configuration, logger: Logger(label: "test")) { event in
            recorded.append(event)
        }
    }

    /// The events published so far.
    public var events: [AdapterEvent] { recorded.all }

    deinit {
        let services = services, directory = dataDirectory
        // Not waited for: the last reference usually goes on a cooperative thread, and two tests blocking theirs
        // here at once took the whole pool of a 2-core machine, so the shutdown they waited for never ran.
        Task.detached {
            await services.training.shutdown()
            services.shutdown()
            try? FileManager.default.removeItem(atPath: directory)
        }
    }
}

/// Events recorded from the services' feed (which calls back synchronously from any task).
final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [AdapterEvent] = []

    func append(_ event: AdapterEvent) { lock.withLock { events.append(event) } }
    var all: [AdapterEvent] { lock.withLock { events } }
}

/// The six-domain routing examples (`Tests/InputRoutingTests/Fixtures`, from the shared reference set) and
/// routers fitted on them.
public enum RoutingFixtures {
    public static let directory = Harness.root + "/Tests/InputRoutingTests/Fixtures"
    public static var fit: [RoutingExample] { try! RoutingExample.read(jsonl: directory + "/fit.jsonl") }
    public static var eval: [RoutingExample] { try! RoutingExample.read(jsonl: directory + "/eval.jsonl") }

    /// Fits a router on `examples` with `engine` and writes it to a new temporary directory.
    public static func fitRouter(_ examples: [RoutingExample] = fit, engine: InferenceEngine, options: RouterFitter.Options = RouterFitter.Options()) throws -> (directory: String, router: InputRouter) {
        let fingerprint = try AdapterDigest.sha256(ofFile: Harness.modelDirectory + "/model.safetensors")
        let (router, _) = try RouterFitter(engine: engine, fingerprint: fingerprint).fit(examples, options: options)
        let directory = Harness.temporaryDirectory() + "/router"
        try router.write(to: directory, kind: options.kind.rawValue)
        return (directory, router)
    }
}
