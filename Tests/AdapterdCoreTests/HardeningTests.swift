import AdapterdAPI
import AdapterdClient
import AdapterdCore
import AdapterdTestSupport
import AdapterFormats
import AdapterRuntime
import Foundation
import MQTTRPC
import Testing

/// Messages an adversary on a shared broker can send, against a real adapterd and mosquitto: each gets a typed
/// error reply, and the worker keeps serving (issue 30's reproductions).
@Suite("Hardening: hostile messages", .serialized)
struct HardeningTests {
    static func status<Reply: RPCReplyMessage>(_ reply: Reply) -> RPCStatus { RPCStatus(reply.status) }

    /// A push begin whose piece list sums past Int64.max.
    static var overflowingBegin: Adapterd_V1_PushAdapterRequest {
        var begin = Adapterd_V1_PushBegin()
        begin.size = 1
        begin.sha256 = String(repeating: "a", count: 64)
        begin.chunkSize = 65_536
        begin.pieces = [(Int64(0), Int64.max), (Int64.max, Int64(1))].map { offset, length in
            var piece = Adapterd_V1_BundlePiece()
            piece.name = "x"
            piece.offset = offset
            piece.length = length
            piece.sha256 = String(repeating: "b", count: 64)
            return piece
        }
        var request = Adapterd_V1_PushAdapterRequest()
        request.name = "overflow"
        request.version = "v1"
        request.begin = begin
        return request
    }

    @Test("a push begin whose pieces overflow, sent to a pool, is INVALID_ARGUMENT and every worker of the pool keeps serving")
    func overflowingPushToAPool() async throws {
        let broker = try Harness.broker()
        var first = try AdapterdDaemon(broker: broker, extraArguments: ["--pool", "edge"])
        var second = try AdapterdDaemon(broker: broker, extraArguments: ["--pool", "edge"])
        let (firstPID, firstClient) = try await first.start()
        defer {
            firstClient.close()
            ChildProcess.terminate(firstPID, within: .seconds(10))
        }
        let (secondPID, secondClient) = try await second.start()
        defer {
            secondClient.close()
            ChildProcess.terminate(secondPID, within: .seconds(10))
        }
        let pool = try await AdapterdClient(brokerURL: broker.url, worker: Topics.poolWorker)
        defer { pool.close() }
        let reply = try await pool.control(.pushAdapter, Self.overflowingBegin)
        #expect(Self.status(reply) == .invalidArgument, "\(reply.error)")
        #expect(reply.error.contains("runs past"), "\(reply.error)")

        // A body that fails to decode has its reply address read leniently: a lone surrogate escape must not trap.
        let raw = try await RawClient(broker: broker)
        defer { raw.close() }
        try raw.publish("adapterd/v1/\(first.worker)/control/GetStatus", Array(#"{"replyTo":"\ud800\u0041","x":"#.utf8), contentType: "application/json")
        try raw.publish("adapterd/v1/\(Topics.poolWorker)/control/Nope", Array(#"{"correlationId":"\udbff\udbff"}"#.utf8), contentType: "application/json")
        _ = await raw.waitForReplies(2, timeout: .seconds(5))

        for (pid, client) in [(firstPID, firstClient), (secondPID, secondClient)] {
            #expect(ChildProcess.isRunning(pid), "a pool worker died")
            #expect(await AdapterdDaemon.answers(client, while: pid), "a pool worker stopped answering")
        }
    }

    @Test("TrainAdapter with a non-finite, negative or huge alpha is INVALID_ARGUMENT up front, and the worker keeps serving")
    func trainingOptionsCheckedUpFront() async throws {
        var daemon = try AdapterdDaemon(adapters: ["intent@v1=" + Harness.adapterDirectory("intent")])
        let (pid, client) = try await daemon.start()
        defer {
            client.close()
            ChildProcess.terminate(pid, within: .seconds(10))
        }
        for alpha in [1e308, -16, .nan, .infinity, 70_000] as [Double] {
            var request = TrainingHandlerTests.request(epochs: 1)
            request.alpha = alpha
            let reply = try await client.control(.trainAdapter, request)
            #expect(Self.status(reply) == .invalidArgument && reply.error.contains("alpha"), "alpha \(alpha): \(Self.status(reply)) \(reply.error)")
        }
        #expect(await AdapterdDaemon.answers(client, while: pid), "the worker stopped answering")
    }

    @Test("a training event whose loss is not a number still encodes: a status document never traps")
    func nonFiniteLossEncodes() throws {
        let event = AdapterEvent(event: .training, name: "n", version: "v", actor: "a", reason: "r", training: AdapterEvent.Training(epoch: 0, step: 1, totalSteps: 2, loss: .nan))
        let decoded = try JSONSerialization.jsonObject(with: Data(event.json())) as? [String: Any]
        #expect((decoded?["training"] as? [String: Any])?["loss"] as? String == "NaN")
    }

    @Test("after another client takes the worker's client id (the broker publishes its Last Will), the worker reconnects and is online again")
    func onlineAgainAfterTakeover() async throws {
        let broker = try Harness.broker()
        let configuration = Harness.configuration(broker: broker)
        let worker = try await RunningWorker(configuration)
        try await worker.stopping {
            let watcher = try await RawClient(broker: broker)
            defer { watcher.close() }
            let statusTopic = "adapterd/v1/\(configuration.workerID)/status"
            try await watcher.client.subscribe(statusTopic, acknowledgedWithin: .seconds(5))
            let intruder = try MQTTClient(options: MQTTOptions(host: "127.0.0.1", port: broker.port, clientID: "adapterd-" + configuration.workerID))
            try await intruder.connect()
            intruder.disconnect()
            @Sendable func states(_ messages: [MQTTMessage]) -> [String] {
                messages.filter { $0.topic == statusTopic }.compactMap { try? JSONDecoder().decode(WorkerStatus.self, from: Data($0.payload)).state }
            }
            let wentOffline = await watcher.waitUntil(timeout: .seconds(10)) { states($0).contains("offline") }
            #expect(wentOffline, "the takeover did not publish the Last Will: \(states(watcher.received))")
            let backOnline = await watcher.waitUntil(timeout: .seconds(20)) { messages in
                let seen = states(messages)
                return seen.lastIndex(of: "online").map { $0 > (seen.lastIndex(of: "offline") ?? -1) } ?? false
            }
            #expect(backOnline, "the retained status stayed offline after the reconnect: \(states(watcher.received))")
            let client = try await AdapterdClient(brokerURL: broker.url, worker: configuration.workerID)
            defer { client.close() }
            let status = try await client.control(.getStatus, Adapterd_V1_GetStatusRequest())
            #expect(Self.status(status) == .ok)
        }
    }
}

/// Names, routers, feedback and adapter weights that must be refused at the door, over MQTT to an in-process worker.
@Suite("Hardening: what a name may hold", .serialized)
struct HardeningRegistryTests {
    static func load(_ client: AdapterdClient, _ name: String, _ version: String, _ path: String) async throws -> Adapterd_V1_LoadAdapterReply {
        var request = Adapterd_V1_LoadAdapterRequest()
        request.name = name
        request.version = version
        request.path = path
        return try await client.control(.loadAdapter, request, timeout: .seconds(30))
    }

    static func infer(_ client: AdapterdClient, adapter: String = "", text: String = "turn on the lights") async throws -> Adapterd_V1_InferReply {
        var request = Adapterd_V1_InferRequest()
        request.text = text
        request.adapter = adapter
        return try await client.infer(request)
    }

    /// Runs `body` against a worker in this process on a broker of its own (its configuration adjusted by `adjust`)
    /// and a client of it; stops both on every path.
    static func withWorker(
        _ adjust: (inout WorkerConfiguration) -> Void = { _ in }, _ body: (RunningWorker, AdapterdClient) async throws -> Void
    ) async throws {
        let broker = try Harness.broker()
        var configuration = Harness.configuration(broker: broker)
        adjust(&configuration)
        let worker = try await RunningWorker(configuration)
        try await worker.stopping {
            let client = try await AdapterdClient(brokerURL: broker.url, worker: configuration.workerID)
            defer { client.close() }
            try await body(worker, client)
        }
    }

    /// A copy of the fitted router in `directory` with its labels replaced by `labels` (the tensors keep their shapes).
    static func routerCopy(_ directory: String, labels: [String]) throws -> String {
        let copy = Harness.temporaryDirectory() + "/router"
        try FileManager.default.copyItem(atPath: directory, toPath: copy)
        let path = copy + "/router.json"
        var document = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        let count = (document["labels"] as? [String])?.count ?? 0
        document["labels"] = Array((labels + (labels.count..<count).map { "pad\($0)" }).prefix(count))
        try JSONSerialization.data(withJSONObject: document).write(to: URL(fileURLWithPath: path))
        return copy
    }

    @Test("a name holds one kind: a router under an adapter's name, an adapter under a router's, and a training under a router's name are FAILED_PRECONDITION; the adapter keeps serving")
    func oneKindPerName() async throws {
        try await Self.withWorker { worker, client in
            let (router, _) = try RoutingFixtures.fitRouter(engine: worker.worker.engine)
            let asAdapter = try await Self.load(client, "intent", "v2", router)
            #expect(RPCStatus(asAdapter.status) == .failedPrecondition && asAdapter.error.contains("one kind"), "\(asAdapter.error)")
            let hub = try await Self.load(client, "hub", "v1", router)
            #expect(RPCStatus(hub.status) == .ok, "\(hub.error)")
            let asRouter = try await Self.load(client, "hub", "v2", Harness.adapterDirectory("intent"))
            #expect(RPCStatus(asRouter.status) == .failedPrecondition && asRouter.error.contains("one kind"), "\(asRouter.error)")
            var train = TrainingHandlerTests.request(version: "v9", epochs: 1)
            train.name = "hub"
            let trained = try await client.control(.trainAdapter, train)
            #expect(RPCStatus(trained.status) == .failedPrecondition, "\(trained.error)")
            let served = try await Self.infer(client, adapter: "intent")
            #expect(served.status == .ok && served.version == "v1", "\(served.error)")
        }
    }

    @Test("a router's labels must be adapter names other than its own; a choice that is not a loaded adapter falls back to the route's adapter, counted by reason")
    func routersThatPointNowhere() async throws {
        try await Self.withWorker({ $0.metricsInterval = .seconds(1) }) { worker, client in
            let (router, _) = try RoutingFixtures.fitRouter(engine: worker.worker.engine)
            for bad in ["", "../../etc", "a/b/#", "two\nlines"] {
                let copy = try Self.routerCopy(router, labels: [bad])
                let reply = try await Self.load(client, "bad", "v1", copy)
                #expect(RPCStatus(reply.status) == .failedPrecondition && reply.error.contains("not an adapter name"), "label \(bad.debugDescription): \(reply.error)")
            }
            let itself = try await Self.load(client, "chat", "v1", router)
            #expect(RPCStatus(itself.status) == .failedPrecondition && itself.error.contains("own name"), "\(itself.error)")

            // The router's six domain adapters are not loaded: every choice falls back to the route's adapter.
            let hub = try await Self.load(client, "hub", "v1", router)
            try #require(RPCStatus(hub.status) == .ok, "\(hub.error)")
            var route = Adapterd_V1_SetRouteRequest()
            route.name = "voice"
            route.topic = "adapterd/v1/+/infer/#"
            route.router = "hub"
            route.adapter = "intent"
            let set = try await client.control(.setRoute, route)
            try #require(RPCStatus(set.status) == .ok, "\(set.error)")
            for text in ["turn on the lights", "my chest hurts", "the motor is vibrating"] {
                let reply = try await Self.infer(client, text: text)
                #expect(reply.status == .ok && reply.adapter == "intent" && reply.router == "hub", "\(text): \(reply.status) \(reply.error) served by \(reply.adapter)")
            }
            let metrics = await worker.worker.currentMetrics()
            let fallbacks = metrics.routers?.first { $0.name == "hub" }?.fallbacks ?? 0
            #expect(fallbacks >= 3, "fallbacks counted: \(fallbacks)")
        }
    }

    @Test("Feedback past the total bytes or names bound is RESOURCE_EXHAUSTED and stores nothing")
    func feedbackIsBounded() async throws {
        try await Self.withWorker({ $0.feedbackLimits = FeedbackLimits(perName: 100, maxBytes: 4096, maxNames: 2) }) { worker, client in
            func feedback(_ name: String, _ text: String) async throws -> Adapterd_V1_FeedbackReply {
                var request = Adapterd_V1_FeedbackRequest()
                request.name = name
                request.text = text
                request.label = "lights"
                return try await client.control(.feedback, request)
            }
            for name in ["a", "b"] {
                let reply = try await feedback(name, "turn on the lights")
                #expect(RPCStatus(reply.status) == .ok, "\(reply.error)")
            }
            let third = try await feedback("c", "turn on the lights")
            #expect(RPCStatus(third.status) == .resourceExhausted && third.error.contains("names"), "\(third.error)")
            let large = try await feedback("a", String(repeating: "x", count: 5000))
            #expect(RPCStatus(large.status) == .resourceExhausted && large.error.contains("bytes"), "\(large.error)")
            let after = try await feedback("a", "dim the lights")
            #expect(RPCStatus(after.status) == .ok && after.stored == 2, "\(after.error) \(after.stored)")
        }
    }

    @Test("adapters with NaN, infinite or 3e38 weights are refused at load with the tensor's name; the previous version keeps serving")
    func nonFiniteWeightsAreRefused() async throws {
        try await Self.withWorker { worker, client in
            for (index, value) in [Float.nan, .infinity, 3e38].enumerated() {
                let copy = try Harness.adapterCopy("intent", editing: "lora_B.weight") { $0[$0.count / 2] = value }
                let reply = try await Self.load(client, "intent", "bad\(index)", copy)
                #expect(RPCStatus(reply.status) == .failedPrecondition && reply.error.contains("lora_B.weight") && reply.error.contains("finite"),
                        "\(value): \(reply.error)")
            }
            let served = try await Self.infer(client, adapter: "intent")
            #expect(served.status == .ok && served.version == "v1", "\(served.error)")
        }
    }
}
