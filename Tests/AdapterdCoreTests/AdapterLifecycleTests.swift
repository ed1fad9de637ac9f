import AdapterdAPI
import AdapterdClient
import AdapterdCore
import AdapterdTestSupport
import Foundation
import MQTTRPC
import Testing

/// Versions, activation, rollback and persistence through the worker's RPC methods.
@Suite("Adapter lifecycle over MQTT", .serialized)
struct AdapterLifecycleTests {
    func infer(_ client: AdapterdClient, version: String = "") async throws -> Adapterd_V1_InferReply {
        var request = Adapterd_V1_InferRequest()
        request.text = "vibration exceeds threshold on motor 7"
        request.adapter = "alerts"
        request.version = version
        return try await client.infer(request)
    }

    func load(_ client: AdapterdClient, _ version: String, from path: String) async throws -> Adapterd_V1_LoadAdapterReply {
        var request = Adapterd_V1_LoadAdapterRequest()
        request.name = "alerts"
        request.version = version
        request.path = path
        return try await client.control(.loadAdapter, request)
    }

    @Test("a new version is staged, activation switches to it, rollback returns, and all of it survives a restart")
    func versionsActivationRollbackRestart() async throws {
        let broker = try Harness.broker()
        var configuration = Harness.configuration(broker: broker)
        configuration.preload = [("alerts", "v1", Harness.adapterDirectory("intent"))]
        var worker = try await RunningWorker(configuration)
        let client = try await AdapterdClient(brokerURL: broker.url, worker: configuration.workerID)

        #expect(try await infer(client).version == "v1")
        let staged = try await load(client, "v2", from: Harness.adapterDirectory("severity"))
        #expect(RPCStatus(staged.status) == .ok && staged.adapter.state == "staged")
        #expect(try await infer(client).version == "v1", "a staged version serves only when named")
        #expect(try await infer(client, version: "v2").label == "critical")

        var activate = Adapterd_V1_ActivateAdapterRequest()
        activate.name = "alerts"
        activate.version = "v2"
        activate.reason = "better recall"
        let activated = try await client.control(.activateAdapter, activate)
        #expect(activated.adapter.state == "active")
        #expect(try await infer(client).version == "v2")

        var rollback = Adapterd_V1_RollbackRequest()
        rollback.name = "alerts"
        rollback.reason = "operator"
        let back = try await client.control(.rollback, rollback)
        #expect(back.adapter.version == "v1")
        #expect(try await infer(client).version == "v1")

        var history = Adapterd_V1_HistoryRequest()
        history.name = "alerts"
        let trail = try await client.control(.history, history).events.map { "\($0.action) \($0.version)" }
        #expect(trail == ["loaded v1", "activated v1", "loaded v2", "activated v2", "rolled back v1"])

        // Restart on the same data directory without preloading: the registry brings everything back.
        try await worker.stop()
        configuration.preload = []
        worker = try await RunningWorker(configuration)
        let listed = try await client.control(.listAdapters, Adapterd_V1_ListAdaptersRequest())
        #expect(listed.adapters.map { "\($0.version)=\($0.state)" } == ["v1=active", "v2=retired"])
        #expect(try await infer(client).version == "v1")
        client.close()
        try await worker.stop()
    }

    @Test("a corrupt adapter version is refused, recorded as failed, and the active version keeps serving")
    func corruptVersionRefused() async throws {
        let broker = try Harness.broker()
        var configuration = Harness.configuration(broker: broker)
        configuration.preload = [("alerts", "v1", Harness.adapterDirectory("intent"))]
        let worker = try await RunningWorker(configuration)
        let client = try await AdapterdClient(brokerURL: broker.url, worker: configuration.workerID)

        let corrupt = Harness.temporaryDirectory() + "/corrupt"
        try FileManager.default.createDirectory(atPath: corrupt, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Harness.adapterDirectory("intent") + "/adapter_config.json", toPath: corrupt + "/adapter_config.json")
        let weights = try Data(contentsOf: URL(fileURLWithPath: Harness.adapterDirectory("intent") + "/adapter_model.safetensors"))
        try weights.prefix(1000).write(to: URL(fileURLWithPath: corrupt + "/adapter_model.safetensors"))

        let events = try await RawClient(broker: broker)
        try await events.client.subscribe(Topics(worker: configuration.workerID).events, qos: 1, acknowledgedWithin: .seconds(5))
        let reply = try await load(client, "v2", from: corrupt)
        #expect(RPCStatus(reply.status) == .failedPrecondition)
        let published = await events.waitForReplies(1, timeout: .seconds(5))
        let event = try JSONDecoder().decode(AdapterEvent.self, from: Data(try #require(published.first).payload))
        #expect(event.event == .refused && event.name == "alerts" && event.version == "v2")
        events.close()
        #expect(reply.error.contains("refused"))
        #expect(try await infer(client).version == "v1")
        var history = Adapterd_V1_HistoryRequest()
        history.name = "alerts"
        #expect(try await client.control(.history, history).events.map(\.action).contains("refused"))
        client.close()
        try await worker.stop()
    }
}

/// Routing and session affinity through the worker.
@Suite("Routing and affinity over MQTT", .serialized)
struct RoutingTests {
    @Test("routes pick adapters by topic and sensor type; an explicit adapter wins; no match gives an embedding")
    func routing() async throws {
        let broker = try Harness.broker()
        let configuration = Harness.configuration(broker: broker)
        let worker = try await RunningWorker(configuration)
        let client = try await AdapterdClient(brokerURL: broker.url, worker: configuration.workerID)
        for (name, topic, sensor, adapter, priority) in [("home", "adapterd/v1/\(configuration.workerID)/infer/voice/#", "", "intent", 10), ("plant", "", "vibration", "severity", 5)] {
            var route = Adapterd_V1_SetRouteRequest()
            route.name = name
            route.topic = topic
            route.sensorType = sensor
            route.adapter = adapter
            route.priority = Int32(priority)
            #expect(RPCStatus(try await client.control(.setRoute, route).status) == .ok)
        }
        var request = Adapterd_V1_InferRequest()
        request.text = "lock the door"
        #expect(try await client.infer(request, subtopic: "voice/hall").adapter == "intent")
        #expect(try await client.infer(request, subtopic: "vibration/m7").adapter == "severity")
        #expect(try await client.infer(request, subtopic: "other/x").embedding.count == 384)
        request.adapter = "severity"
        #expect(try await client.infer(request, subtopic: "voice/hall").adapter == "severity")
        let listed = try await client.control(.listRoutes, Adapterd_V1_ListRoutesRequest())
        #expect(listed.routes.map(\.name) == ["home", "plant"])
        var bad = Adapterd_V1_SetRouteRequest()
        bad.name = "bad"
        bad.topic = "a/#/b"
        bad.adapter = "intent"
        #expect(RPCStatus(try await client.control(.setRoute, bad).status) == .invalidArgument)
        client.close()
        try await worker.stop()
    }

    @Test("a session keeps its adapter version across activation and restart until ClearSession")
    func affinity() async throws {
        let broker = try Harness.broker()
        var configuration = Harness.configuration(broker: broker)
        configuration.preload = [("alerts", "v1", Harness.adapterDirectory("intent"))]
        var worker = try await RunningWorker(configuration)
        let client = try await AdapterdClient(brokerURL: broker.url, worker: configuration.workerID)
        func infer(session: String) async throws -> String {
            var request = Adapterd_V1_InferRequest()
            request.text = "motor 7 overheats"
            request.adapter = "alerts"
            request.session = session
            return try await client.infer(request).version
        }
        #expect(try await infer(session: "conversation-1") == "v1")
        var load = Adapterd_V1_LoadAdapterRequest()
        load.name = "alerts"
        load.version = "v2"
        load.path = Harness.adapterDirectory("severity")
        _ = try await client.control(.loadAdapter, load)
        var activate = Adapterd_V1_ActivateAdapterRequest()
        activate.name = "alerts"
        activate.version = "v2"
        _ = try await client.control(.activateAdapter, activate)
        #expect(try await infer(session: "conversation-1") == "v1", "pinned session stays on v1")
        #expect(try await infer(session: "conversation-2") == "v2", "a new session gets the active version")

        try await worker.stop()
        configuration.preload = []
        worker = try await RunningWorker(configuration)
        #expect(try await infer(session: "conversation-1") == "v1", "the pin survives a restart")
        var clear = Adapterd_V1_ClearSessionRequest()
        clear.session = "conversation-1"
        #expect(try await client.control(.clearSession, clear).cleared == 1)
        #expect(try await infer(session: "conversation-1") == "v2")
        client.close()
        try await worker.stop()
    }
}

@Suite("Rollouts over MQTT", .serialized)
struct RolloutOverMQTTTests {
    @Test("SetRollout splits sessions between versions, sticky per session, and refuses versions that are not loaded")
    func rollout() async throws {
        let broker = try Harness.broker()
        var configuration = Harness.configuration(broker: broker)
        configuration.preload = [("alerts", "v1", Harness.adapterDirectory("intent")), ("alerts", "v2", Harness.adapterDirectory("severity"))]
        let worker = try await RunningWorker(configuration)
        let client = try await AdapterdClient(brokerURL: broker.url, worker: configuration.workerID)
        var split = Adapterd_V1_SetRolloutRequest()
        split.name = "alerts"
        split.splits = ["v1": 50, "v2": 50]
        #expect(RPCStatus(try await client.control(.setRollout, split).status) == .ok)
        func version(_ session: String) async throws -> String {
            var request = Adapterd_V1_InferRequest()
            request.text = "pump pressure low"
            request.adapter = "alerts"
            request.session = session
            return try await client.infer(request).version
        }
        var first: [String: String] = [:]
        for index in 0..<20 { first["s\(index)"] = try await version("s\(index)") }
        #expect(Set(first.values) == ["v1", "v2"])
        for index in 0..<20 { #expect(try await version("s\(index)") == first["s\(index)"]) }
        var get = Adapterd_V1_GetAdapterRequest()
        get.name = "alerts"
        let described = try await client.control(.getAdapter, get)
        #expect(described.active == "v1")
        #expect(described.versions.map(\.version) == ["v1", "v2"])
        #expect(described.splits == ["v1": 50, "v2": 50])
        split.splits = ["v1": 90, "v9": 10]
        #expect(RPCStatus(try await client.control(.setRollout, split).status) == .failedPrecondition)
        client.close()
        try await worker.stop()
    }
}

@Suite("Adapter cache in the worker", .serialized)
struct WorkerCacheTests {
    @Test("with a budget of one adapter, requests rotating over three still succeed and the budget holds")
    func smallBudget() async throws {
        let broker = try Harness.broker()
        var configuration = Harness.configuration(broker: broker)
        configuration.cacheMaxBytes = 700_000  // one of the reference adapters (0.3–0.6 MB) at a time
        configuration.preload = [
            ("intent", "v1", Harness.adapterDirectory("intent")),
            ("severity", "v1", Harness.adapterDirectory("severity")),
            ("dense", "v1", Harness.adapterDirectory("rand-r4-rslora-dense")),
        ]
        let worker = try await RunningWorker(configuration)
        let client = try await AdapterdClient(brokerURL: broker.url, worker: configuration.workerID)
        for round in 0..<3 {
            for name in ["intent", "severity", "dense"] {
                var request = Adapterd_V1_InferRequest()
                request.text = "round \(round)"
                request.adapter = name
                let reply = try await client.infer(request)
                #expect(RPCStatus(reply.status) == .ok && reply.adapter == name)
            }
        }
        let status = try await client.control(.getStatus, Adapterd_V1_GetStatusRequest())
        #expect(status.cacheBytes <= status.cacheMaxBytes)
        #expect(status.cacheEvictions > 0)
        #expect(status.cacheMisses > 0)
        client.close()
        try await worker.stop()
    }
}
