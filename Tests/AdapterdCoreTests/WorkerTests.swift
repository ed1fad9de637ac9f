import AdapterdAPI
import AdapterdClient
import AdapterdCore
import AdapterdTestSupport
import AdapterEngine
import AdapterRuntime
import Foundation
import MQTTRPC
import Testing

/// The worker against a real mosquitto, the real model and PEFT's adapters.
@Suite("Worker over MQTT", .serialized)
struct WorkerTests {
    static let lockTheDoor: [Float] = [-3.156903, -0.187438, -0.958431, 4.003953]

    func request(_ text: String, adapter: String = "") -> Adapterd_V1_InferRequest {
        var request = Adapterd_V1_InferRequest()
        request.text = text
        request.adapter = adapter
        return request
    }

    @Test("JSON and protobuf requests over MQTT 5 get PyTorch's logits back in their own encoding", arguments: [RPCEncoding.json, .protobuf])
    func roundTrip(encoding: RPCEncoding) async throws {
        let broker = try Harness.broker()
        let worker = try await RunningWorker(Harness.configuration(broker: broker))
        let client = try await AdapterdClient(brokerURL: broker.url, worker: worker.worker.topics.worker, encoding: encoding)
        let reply = try await client.infer(request("lock the door", adapter: "intent"), subtopic: "keypad/k7")
        #expect(RPCStatus(reply.status) == .ok)
        #expect(reply.label == "security")
        #expect(reply.adapter == "intent" && reply.version == "v1")
        #expect(Harness.maxAbsDiff(reply.logits, Self.lockTheDoor) < 1e-4)
        #expect(reply.tokens == 5)
        let embedding = try await client.infer(request("lock the door"))
        #expect(embedding.embedding.count == 384 && embedding.logits.isEmpty)
        client.close()
        try await worker.stop()
    }

    @Test("an INT8 worker serves the reference labels and reports its precision, kernel path and label re-checks")
    func int8WorkerReportsPrecision() async throws {
        let broker = try Harness.broker()
        defer { broker.stop() }
        var configuration = Harness.configuration(broker: broker)
        configuration.precision = .int8
        let worker = try await RunningWorker(configuration)
        let client = try await AdapterdClient(brokerURL: broker.url, worker: configuration.workerID)
        let status = try await client.control(.getStatus, Adapterd_V1_GetStatusRequest())
        #expect(status.precision == "int8")
        #expect(status.kernelPath == KernelPath.detected.description)
        let reply = try await client.infer(request("Switch OFF the lamp!", adapter: "intent"))
        #expect(reply.label == "lights_off")
        // The label check's counts are in the metrics document, per version (a decided text like this one is
        // answered by INT8).
        let metrics = await worker.worker.currentMetrics()
        #expect(metrics.engine?.precision == "int8" && metrics.engine?.labelRechecks == worker.worker.engine.labelRechecks)
        let version = try #require(metrics.adapters.first { $0.name == "intent" && $0.version == "v1" })
        #expect(version.labelChecks == 1 && version.labelRechecks == 0)
        client.close()
        try await worker.stop()
    }

    @Test(
        "a BF16 worker serves the reference labels, and its label check's re-checks run in FP32",
        .enabled(if: KernelPath.detected.hasBF16))
    func bf16WorkerServesReferenceLabels() async throws {
        let broker = try Harness.broker()
        defer { broker.stop() }
        var configuration = Harness.configuration(broker: broker)
        configuration.precision = .bf16
        let worker = try await RunningWorker(configuration)
        let client = try await AdapterdClient(brokerURL: broker.url, worker: configuration.workerID)
        defer { client.close() }
        let status = try await client.control(.getStatus, Adapterd_V1_GetStatusRequest())
        #expect(status.precision == "bf16")
        let reply = try await client.infer(request("lock the door", adapter: "intent"))
        #expect(reply.label == "security")
        #expect(Harness.maxAbsDiff(reply.logits, Self.lockTheDoor) < 0.05, "BF16 logits stay within its error of PyTorch's")
        let metrics = await worker.worker.currentMetrics()
        let version = try #require(metrics.adapters.first { $0.name == "intent" && $0.version == "v1" })
        #expect(version.labelChecks == 1)
        try await worker.stop()
    }

    @Test("the worker merges a served adapter into its layers in the background, and its replies stay PyTorch's")
    func servedAdapterIsMerged() async throws {
        let broker = try Harness.broker()
        defer { broker.stop() }
        let configuration = Harness.configuration(broker: broker)
        let worker = try await RunningWorker(configuration)
        let client = try await AdapterdClient(brokerURL: broker.url, worker: configuration.workerID)
        defer { client.close() }
        let first = try await client.infer(request("lock the door", adapter: "intent"))
        #expect(Harness.maxAbsDiff(first.logits, Self.lockTheDoor) < 1e-4)
        let merged = await Harness.eventually(timeout: .seconds(30)) { (await worker.worker.currentMetrics()).engine?.mergedAdapters ?? 0 > 0 }
        #expect(merged, "no adapter was merged within 30 s")
        let engine = try #require(await worker.worker.currentMetrics().engine)
        #expect(engine.mergeBudgetBytes == configuration.mergeMaxBytes && (engine.mergedBytes ?? 0) > 0)
        #expect((engine.mergedBytes ?? 0) <= configuration.mergeMaxBytes)
        let again = try await client.infer(request("lock the door", adapter: "intent"))
        #expect(again.label == "security" && Harness.maxAbsDiff(again.logits, Self.lockTheDoor) < 1e-4)
        try await worker.stop()
    }

    @Test("MQTT 3.1.1 clients get replies at replyTo with their correlationId echoed")
    func mqtt311Style() async throws {
        let broker = try Harness.broker()
        let worker = try await RunningWorker(Harness.configuration(broker: broker))
        let raw = try await RawClient(broker: broker, version: .v311)
        let body = #"{"text": "lock the door", "adapter": "intent", "replyTo": "\#(raw.replyTopic)", "correlationId": "req-42"}"#
        try raw.publish(worker.worker.topics.infer + "/door/d1", Array(body.utf8))
        let replies = await raw.waitForReplies(1)
        let reply = try Adapterd_V1_InferReply(jsonUTF8Bytes: try #require(replies.first).payload)
        #expect(reply.correlationID == "req-42")
        #expect(reply.label == "security")
        raw.close()
        try await worker.stop()
    }

    @Test("malformed bodies, wrong types, missing text, unknown adapters and methods get error replies naming the problem")
    func errorReplies() async throws {
        let broker = try Harness.broker()
        let worker = try await RunningWorker(Harness.configuration(broker: broker))
        let topics = worker.worker.topics
        let raw = try await RawClient(broker: broker)
        let cases: [(topic: String, body: String, status: String, mentions: String)] = [
            (topics.infer, #"{"text": "unterminated"#, "INVALID_ARGUMENT", "malformed JSON"),
            (topics.infer, #"{"text": 42}"#, "INVALID_ARGUMENT", "string field"),
            (topics.infer, #"{"adapter": "intent"}"#, "INVALID_ARGUMENT", "'text' is required"),
            (topics.infer, #"{"text": "hi", "adapter": "nope"}"#, "NOT_FOUND", "nope"),
            (topics.control("Reboot"), "{}", "INVALID_ARGUMENT", "unknown method 'Reboot'"),
            (topics.control("LoadAdapter"), #"{"name": "../etc", "version": "v1", "path": "/tmp"}"#, "INVALID_ARGUMENT", "may not"),
        ]
        for (index, item) in cases.enumerated() {
            try raw.publish(item.topic, Array(item.body.utf8), correlation: "c\(index)")
        }
        let replies = await raw.waitForReplies(cases.count)
        #expect(replies.count == cases.count)
        for (index, item) in cases.enumerated() {
            let reply = try #require(replies.first { $0.properties.correlationData == Array("c\(index)".utf8) }, "no reply for \(item.body)")
            #expect(reply.properties.userProperty("status") == item.status, "\(item.body)")
            let body = String(decoding: reply.payload, as: UTF8.self)
            #expect(body.contains("\"status\":\"\(item.status)\""), "\(body)")
            #expect(body.contains(item.mentions), "\(body)")
        }
        // A bad request never stops the worker.
        let client = try await AdapterdClient(brokerURL: broker.url, worker: topics.worker)
        #expect(try await client.infer(request("still here", adapter: "intent")).label.isEmpty == false)
        client.close()
        raw.close()
        try await worker.stop()
    }

    @Test("a duplicate request (same correlation data) is answered from the first execution, not run again")
    func duplicatesAnsweredOnce() async throws {
        let broker = try Harness.broker()
        let worker = try await RunningWorker(Harness.configuration(broker: broker))
        let raw = try await RawClient(broker: broker)
        let body = Array(#"{"text": "lock the door", "adapter": "intent"}"#.utf8)
        let before = await worker.worker.stats.executed
        try raw.publish(worker.worker.topics.infer, body, correlation: "dup-1")
        try raw.publish(worker.worker.topics.infer, body, correlation: "dup-1")
        let replies = await raw.waitForReplies(2)
        #expect(replies.count == 2)
        #expect(replies[0].payload == replies[1].payload)
        #expect(await worker.worker.stats.executed == before + 1)
        raw.close()
        try await worker.stop()
    }

    @Test("200 concurrent requests are each answered exactly once")
    func concurrentRequests() async throws {
        let broker = try Harness.broker()
        let worker = try await RunningWorker(Harness.configuration(broker: broker))
        let raw = try await RawClient(broker: broker)
        let adapters = ["intent", "severity", ""]
        for index in 0..<200 {
            let body = #"{"text": "sensor \#(index) reports vibration", "adapter": "\#(adapters[index % 3])"}"#
            try raw.publish(worker.worker.topics.infer + "/vib/s\(index % 7)", Array(body.utf8), correlation: "r\(index)")
        }
        let replies = await raw.waitForReplies(200, timeout: .seconds(120))
        // A duplicate would arrive just behind the rest: watch for a 201st reply for a while.
        #expect(await !raw.waitUntil(timeout: .milliseconds(300)) { $0.count > 200 }, "a request was answered more than once")
        let correlations = raw.received.compactMap { $0.properties.correlationData.map { String(decoding: $0, as: UTF8.self) } }
        #expect(correlations.count == 200)
        #expect(Set(correlations) == Set((0..<200).map { "r\($0)" }))
        #expect(replies.allSatisfy { $0.properties.userProperty("status") == "OK" })
        raw.close()
        try await worker.stop()
    }

    @Test("a request whose message expiry passes while it waits for the engine is not run and says DEADLINE_EXCEEDED")
    func expiredRequest() async throws {
        let broker = try Harness.broker()
        var configuration = Harness.configuration(broker: broker)
        configuration.maxBatch = 1
        let worker = try await RunningWorker(configuration)
        let raw = try await RawClient(broker: broker)
        // Keep the engine busy with long inputs, then send a request that may wait at most one second: 240 rows of
        // 128 tokens one at a time take several seconds even on the fast INT8-capable kernels (~20 ms each).
        let long = String(repeating: "the pump vibrates and the valve leaks ", count: 20)
        for index in 0..<240 {
            try raw.publish(worker.worker.topics.infer, Array(#"{"text": "\#(long)", "adapter": "intent"}"#.utf8), correlation: "busy\(index)")
        }
        try raw.publish(worker.worker.topics.infer, Array(#"{"text": "urgent", "adapter": "intent"}"#.utf8), correlation: "urgent", expiry: 1)
        let replies = await raw.waitForReplies(241, timeout: .seconds(180))
        let urgent = try #require(replies.first { $0.properties.correlationData == Array("urgent".utf8) })
        #expect(urgent.properties.userProperty("status") == "DEADLINE_EXCEEDED")
        raw.close()
        try await worker.stop()
    }

    @Test("with results publishing on, a copy of each inference reply goes to …/results/{context}")
    func resultsCopy() async throws {
        let broker = try Harness.broker()
        var configuration = Harness.configuration(broker: broker)
        configuration.publishResults = true
        let worker = try await RunningWorker(configuration)
        let raw = try await RawClient(broker: broker)
        let results = worker.worker.topics.results(context: ["door", "d1"])
        try await raw.client.subscribe(results, qos: 1, acknowledgedWithin: .seconds(5))
        try raw.publish(worker.worker.topics.infer + "/door/d1", Array(#"{"text": "lock the door", "adapter": "intent"}"#.utf8), correlation: "r1")
        let received = await raw.waitForReplies(2)
        let copy = try #require(received.first { $0.topic == results })
        let reply = try #require(received.first { $0.topic == raw.replyTopic })
        #expect(copy.payload == reply.payload)
        raw.close()
        try await worker.stop()
    }

    @Test("requests queued while the broker restarts are all answered after the worker reconnects")
    func brokerRestart() async throws {
        let broker = try Harness.broker(persistent: true)
        let configuration = Harness.configuration(broker: broker)
        let worker = try await RunningWorker(configuration)
        broker.stop()
        try broker.start()
        // The worker's persistent session (subscriptions included) survived; its reconnect takes a moment, and
        // the broker queues these QoS 1 requests for it meanwhile.
        let raw = try await RawClient(broker: broker)
        for index in 0..<20 {
            try raw.publish(worker.worker.topics.infer, Array(#"{"text": "reading \#(index)", "adapter": "severity"}"#.utf8), correlation: "q\(index)")
        }
        let replies = await raw.waitForReplies(20, timeout: .seconds(60))
        #expect(Set(replies.compactMap { $0.properties.correlationData.map { String(decoding: $0, as: UTF8.self) } }) == Set((0..<20).map { "q\($0)" }))
        raw.close()
        try await worker.stop()
    }
}

/// A graceful stop against a broker that takes one unacknowledged message at a time.
@Suite("Worker stopping", .serialized)
struct WorkerStopTests {
    /// Set once, read from another task.
    final class Flag: @unchecked Sendable {
        private let lock = NSLock()
        private var value = false
        var isSet: Bool { lock.withLock { value } }
        func set() { lock.withLock { value = true } }
    }

    @Test("a graceful stop waits for the broker to acknowledge every reply: none is lost when replies outnumber the broker's receive maximum")
    func stopLosesNoReply() async throws {
        let directory = Harness.temporaryDirectory()
        // The broker acknowledges one QoS 1 message at a time from each client (its MQTT 5 receive maximum):
        // libmosquitto queues the rest of the worker's replies, and a disconnect drops that queue.
        let (port, pid) = try await Harness.startMosquitto(settings: "allow_anonymous true\nmax_inflight_messages 1", in: directory)
        defer { ChildProcess.terminate(pid, within: .seconds(2)) }
        var configuration = Harness.configuration(brokerURL: "mqtt://127.0.0.1:\(port)")
        configuration.preload = [("intent", "v1", Harness.adapterDirectory("intent"))]
        let worker = try await RunningWorker(configuration)
        let raw = try await RawClient(port: port)
        defer { raw.close() }
        let topic = Topics(worker: configuration.workerID).infer
        // Long texts: each takes the engine far longer than the broker takes to hand over the next request, so
        // requests are waiting in the worker when the broker stalls, whatever this machine's speed.
        let words = (0..<100).map { "word\($0 % 37)" }.joined(separator: " ")
        for index in 0..<60 {
            try raw.publish(topic, Array(#"{"text": "reading \#(index) \#(words)", "adapter": "intent"}"#.utf8), correlation: "r\(index)")
        }
        #expect(await raw.waitUntil(timeout: .seconds(20)) { !$0.isEmpty }, "no reply within 20 s")
        // The broker stalls: the worker's replies pile up unacknowledged while it stops.
        kill(pid, SIGSTOP)
        let piled = await Harness.eventually(timeout: .seconds(20)) { worker.worker.unacknowledgedPublishes >= 20 }
        #expect(piled, "replies did not pile up behind the stalled broker")
        let finished = Flag()
        let early = try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await worker.stop()
                finished.set()
            }
            // A stop that does not wait for the acknowledgements ends within this bound, dropping the queued replies.
            let early = await Harness.eventually(timeout: .seconds(2)) { finished.isSet }
            kill(pid, SIGCONT)
            try await group.waitForAll()
            return early
        }
        #expect(!early, "the worker stopped while its replies were unacknowledged")
        let replies = await raw.waitForReplies(60, timeout: .seconds(10))
        let correlations = replies.compactMap { $0.properties.correlationData.map { String(decoding: $0, as: UTF8.self) } }
        #expect(Set(correlations) == Set((0..<60).map { "r\($0)" }), "\(60 - Set(correlations).count) requests were not answered")
        #expect(correlations.count == 60, "each exactly once")
    }
}

/// The adapterd executable as an operator runs it.
@Suite("adapterd process", .serialized)
struct AdapterdProcessTests {
    static let binary = Harness.root + "/.build/debug/adapterd"

    @Test("a worker that dies without disconnecting is reported offline by its Last Will")
    func lastWill() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build adapterd first (scripts/test does)")
        let broker = try Harness.broker()
        let worker = "will" + UUID().uuidString.prefix(6).lowercased()
        let directory = Harness.temporaryDirectory()
        let process = try TestProcess(Self.binary, arguments: [
            "--broker", broker.url, "--worker-id", worker, "--model", Harness.modelDirectory, "--data-dir", directory,
        ], output: directory + "/adapterd.log")
        let raw = try await RawClient(broker: broker)
        let status = Topics(worker: worker).status
        try raw.client.subscribe(status, qos: 1)
        @Sendable func lastState(_ messages: [MQTTMessage]) -> String? {
            messages.filter { $0.topic == status }.compactMap { try? JSONDecoder().decode(WorkerStatus.self, from: Data($0.payload)).state }.last
        }
        #expect(await raw.waitUntil(timeout: .seconds(10)) { lastState($0) == "online" }, "the worker did not report online within 10 s")
        process.signal(SIGKILL)
        process.wait(timeout: .seconds(10))
        #expect(await raw.waitUntil(timeout: .seconds(10)) { lastState($0) == "offline" }, "the Last Will did not report offline within 10 s")
        raw.close()
    }

    @Test("SIGTERM mid-load: every received request is answered, the status goes offline, the exit is clean")
    func sigtermMidLoad() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build adapterd first (scripts/test does)")
        let broker = try Harness.broker()
        let worker = "sig" + UUID().uuidString.prefix(6).lowercased()
        let directory = Harness.temporaryDirectory()
        let process = try TestProcess(Self.binary, arguments: [
            "--broker", broker.url, "--worker-id", worker, "--model", Harness.modelDirectory, "--data-dir", directory,
            "--adapter", "intent=" + Harness.adapterDirectory("intent"), "--max-batch", "4",
        ], output: directory + "/adapterd.log")
        let raw = try await RawClient(broker: broker)
        let topics = Topics(worker: worker)
        try raw.client.subscribe(topics.status, qos: 1)
        // Wait for the retained "online" status.
        let online = await raw.waitUntil(timeout: .seconds(10)) { messages in
            messages.contains { $0.topic == topics.status && String(decoding: $0.payload, as: UTF8.self).contains("online") }
        }
        try #require(online, "the worker did not report online within 10 s")
        let long = String(repeating: "the compressor overheats and the fan stalls ", count: 12)
        for index in 0..<40 {
            try raw.publish(topics.infer, Array(#"{"text": "\#(long)", "adapter": "intent"}"#.utf8), correlation: "load\(index)")
        }
        // Signal once the first replies are out, while the rest are queued or running.
        let replyTopic = raw.replyTopic
        #expect(await raw.waitUntil(timeout: .seconds(8)) { $0.filter { $0.topic == replyTopic }.count >= 2 }, "no replies within 8 s")
        process.signal(SIGTERM)
        let code = process.wait(timeout: .seconds(120))
        #expect(code == 0)
        // Replies sent before the exit may still be on their way through the broker.
        // Replies and the offline status travel separately: wait for both.
        _ = await raw.waitUntil(timeout: .seconds(10)) { messages in
            messages.filter { $0.topic == raw.replyTopic }.count >= 40
                && (messages.last { $0.topic == topics.status }.map { String(decoding: $0.payload, as: UTF8.self).contains("\"state\":\"offline\"") } ?? false)
        }
        let replies = raw.received.filter { $0.topic == raw.replyTopic }
        let correlations = replies.compactMap { $0.properties.correlationData.map { String(decoding: $0, as: UTF8.self) } }
        #expect(Set(correlations) == Set((0..<40).map { "load\($0)" }), "every request answered")
        #expect(correlations.count == 40, "each exactly once")
        #expect(replies.allSatisfy { ["OK", "UNAVAILABLE"].contains($0.properties.userProperty("status") ?? "") })
        #expect(replies.filter { $0.properties.userProperty("status") == "OK" }.count >= 2)
        let statuses = raw.received.filter { $0.topic == topics.status }.map { String(decoding: $0.payload, as: UTF8.self) }
        #expect(statuses.last?.contains("\"state\":\"offline\"") == true)
        raw.close()
    }

    @Test("kill -9 during a stream of activations: after restart the registry is consistent and exactly one version is active")
    func killDuringActivation() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build adapterd first (scripts/test does)")
        let broker = try Harness.broker()
        let worker = "kill" + UUID().uuidString.prefix(6).lowercased()
        let directory = Harness.temporaryDirectory()
        let arguments = [
            "--broker", broker.url, "--worker-id", worker, "--model", Harness.modelDirectory, "--data-dir", directory,
            "--adapter", "alerts@v1=" + Harness.adapterDirectory("intent"), "--adapter-root", Harness.root,
        ]
        let process = try TestProcess(Self.binary, arguments: arguments, output: directory + "/adapterd.log")
        let client = try await AdapterdClient(brokerURL: broker.url, worker: worker)
        try #require(await Harness.answersStatus(client, within: .seconds(50)) { process.isRunning }, "adapterd did not answer GetStatus")
        var load = Adapterd_V1_LoadAdapterRequest()
        load.name = "alerts"
        load.version = "v2"
        load.path = Harness.adapterDirectory("severity")
        #expect(RPCStatus(try await client.control(.loadAdapter, load).status) == .ok)
        client.close()

        let raw = try await RawClient(broker: broker)
        for index in 0..<400 {
            try raw.publish(Topics(worker: worker).control("ActivateAdapter"), Array(#"{"name": "alerts", "version": "v\#(index % 2 + 1)"}"#.utf8), correlation: "a\(index)")
        }
        _ = await raw.waitUntil(timeout: .seconds(5)) { $0.count >= 20 }
        process.signal(SIGKILL)
        process.wait(timeout: .seconds(10))
        let answered = raw.received.count
        raw.close()
        #expect(answered >= 20 && answered < 400, "killed mid-stream (\(answered) of 400 answered)")

        // The SQLite file as the killed process left it.
        let store = try AdapterStore(dataDirectory: directory)
        let versions = try store.versions(name: "alerts")
        let active = versions.filter { $0.state == .active }
        #expect(active.count == 1)
        #expect(Set(versions.map(\.version)) == ["v1", "v2"])
        let lastSwitch = try store.history(name: "alerts").last { $0.action == .activated }
        #expect(lastSwitch?.version == active.first?.version, "the audit trail ends on the version that is active")

        // A restarted worker serves that version.
        let again = try TestProcess(Self.binary, arguments: Array(arguments.dropLast(2)), output: directory + "/adapterd-2.log")
        defer { again.terminate(within: .seconds(5)) }
        let second = try await AdapterdClient(brokerURL: broker.url, worker: worker)
        var request = Adapterd_V1_InferRequest()
        request.text = "vibration exceeds threshold on motor 7"
        request.adapter = "alerts"
        var reply: Adapterd_V1_InferReply?
        for _ in 0..<200 where reply == nil {
            reply = try? await second.infer(request, timeout: .milliseconds(250))
        }
        #expect(reply?.version == active.first?.version)
        second.close()
    }
}

/// Stopping and starting in bad states, as an operator meets them.
@Suite("adapterd process in bad states", .serialized)
struct AdapterdBadStateTests {
    static let binary = Harness.root + "/.build/debug/adapterd"

    /// A loopback port nothing listens on.
    static func closedPort() throws -> Int {
        let broker = try Harness.broker()
        let port = broker.port
        broker.stop()
        return port
    }

    @Test("SIGTERM while the broker is unreachable stops the worker within seconds")
    func sigtermWhileDisconnected() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build adapterd first (scripts/test does)")
        let directory = Harness.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = directory + "/adapterd.log"
        let process = try TestProcess(Self.binary, arguments: [
            "--broker", "mqtt://127.0.0.1:\(try Self.closedPort())", "--worker-id", "unreachable", "--model", Harness.modelDirectory,
            "--data-dir", directory,
        ], output: log)
        // Wait until it is retrying (it logs each failed attempt).
        let retrying = await Harness.eventually(timeout: .seconds(60)) {
            (try? String(contentsOfFile: log, encoding: .utf8))?.contains("cannot connect to the broker") ?? false
        }
        try #require(retrying, "adapterd did not start retrying the broker within 60 s")
        let signalled = ContinuousClock.now
        let code = process.terminate(within: .seconds(10))
        let elapsed = ContinuousClock.now - signalled
        #expect(code == 0 && elapsed < .seconds(10), "adapterd did not stop cleanly (exit code 0) within 10 s of SIGTERM: \(String(describing: try? String(contentsOfFile: log, encoding: .utf8)))")
    }

    /// Runs adapterd with a broker nobody listens on, `--data-dir directory` and `extra` arguments, until it exits
    /// (within a minute); its exit code and output.
    static func runToExit(directory: String, worker: String, extra: [String] = []) throws -> (code: Int32?, output: String) {
        let log = directory + "/adapterd.log"
        let pid = try ChildProcess.spawn(binary, arguments: [
            "--broker", "mqtt://127.0.0.1:\(try closedPort())", "--worker-id", worker, "--model", Harness.modelDirectory,
            "--data-dir", directory,
        ] + extra, output: log)
        let code = ChildProcess.wait(pid, timeout: .seconds(60))
        if code == nil { ChildProcess.terminate(pid, within: .seconds(1)) }
        return (code, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }

    @Test("A registry file emptied to 0 bytes stops the worker with a clear message instead of starting empty")
    func emptyRegistryRefused() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build adapterd first (scripts/test does)")
        let directory = Harness.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(FileManager.default.createFile(atPath: directory + "/adapterd.sqlite", contents: Data()))
        let (code, output) = try Self.runToExit(directory: directory, worker: "empty")
        #expect(code != nil && code != 0, "\(output)")
        #expect(output.contains("is an empty file"), "\(output)")
        #expect(!output.contains("USAGE"), "a broken registry is not a usage error: \(output)")
        let size = (try FileManager.default.attributesOfItem(atPath: directory + "/adapterd.sqlite")[.size] as? Int) ?? -1
        #expect(size == 0, "the empty registry was overwritten")
    }

    @Test("A password file that cannot be read stops the worker with its path, before anything connects")
    func unreadablePasswordFile() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build adapterd first (scripts/test does)")
        let directory = Harness.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (code, output) = try Self.runToExit(
            directory: directory, worker: "secret", extra: ["--username", "edge", "--password-file", directory + "/missing-password"])
        #expect(code != nil && code != 0, "\(output)")
        #expect(output.contains("cannot read the password file \(directory)/missing-password"), "\(output)")
    }

    @Test("A damaged registry file stops the worker with the reason and what to do, without usage text")
    func damagedRegistryRefused() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build adapterd first (scripts/test does)")
        let directory = Harness.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(FileManager.default.createFile(atPath: directory + "/adapterd.sqlite", contents: Data(repeating: 0x5A, count: 8192)))
        let (code, output) = try Self.runToExit(directory: directory, worker: "damaged")
        #expect(code != nil && code != 0, "\(output)")
        #expect(output.contains("cannot be read") && output.contains("restore it from a backup"), "\(output)")
        #expect(!output.contains("USAGE"), "\(output)")
    }
}
