import AdapterdAPI
import AdapterdCore
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
        return try await client.control("LoadAdapter", request, as: Adapterd_V1_LoadAdapterReply.self)
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
        let activated = try await client.control("ActivateAdapter", activate, as: Adapterd_V1_ActivateAdapterReply.self)
        #expect(activated.adapter.state == "active")
        #expect(try await infer(client).version == "v2")

        var rollback = Adapterd_V1_RollbackRequest()
        rollback.name = "alerts"
        rollback.reason = "operator"
        let back = try await client.control("Rollback", rollback, as: Adapterd_V1_RollbackReply.self)
        #expect(back.adapter.version == "v1")
        #expect(try await infer(client).version == "v1")

        var history = Adapterd_V1_HistoryRequest()
        history.name = "alerts"
        let trail = try await client.control("History", history, as: Adapterd_V1_HistoryReply.self).events.map { "\($0.action) \($0.version)" }
        #expect(trail == ["loaded v1", "activated v1", "loaded v2", "activated v2", "rolled back v1"])

        // Restart on the same data directory without preloading: the registry brings everything back.
        try await worker.stop()
        configuration.preload = []
        worker = try await RunningWorker(configuration)
        let listed = try await client.control("ListAdapters", Adapterd_V1_ListAdaptersRequest(), as: Adapterd_V1_ListAdaptersReply.self)
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

        let reply = try await load(client, "v2", from: corrupt)
        #expect(RPCStatus(reply.status) == .failedPrecondition)
        #expect(reply.error.contains("refused"))
        #expect(try await infer(client).version == "v1")
        var history = Adapterd_V1_HistoryRequest()
        history.name = "alerts"
        #expect(try await client.control("History", history, as: Adapterd_V1_HistoryReply.self).events.map(\.action).contains("refused"))
        client.close()
        try await worker.stop()
    }
}
