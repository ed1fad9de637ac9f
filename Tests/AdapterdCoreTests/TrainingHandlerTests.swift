import AdapterdAPI
import AdapterdClient
import AdapterdCore
import AdapterdTestSupport
import AdapterRuntime
import Foundation
import MQTTRPC
import Testing

/// TrainAdapter, CancelTraining and Feedback called directly: no broker.
@Suite("Training handlers", .serialized)
struct TrainingHandlerTests {
    static let examples: [(String, String)] = [
        ("turn on the kitchen lights", "lights"), ("switch off the hallway lamp", "lights"), ("dim the bedroom lights", "lights"),
        ("smoke detected in the basement", "alarm"), ("the fire alarm is ringing", "alarm"), ("glass break sensor triggered", "alarm"),
    ]

    static func request(version: String = "v1", epochs: Int32 = 2, examples: [(String, String)] = examples) -> Adapterd_V1_TrainAdapterRequest {
        var request = Adapterd_V1_TrainAdapterRequest()
        request.name = "home"
        request.version = version
        request.examples = examples.map { text, label in
            var example = Adapterd_V1_LabelledText()
            example.text = text
            example.label = label
            return example
        }
        request.epochs = epochs
        request.batchSize = 3
        request.rank = 4
        return request
    }

    static func status(_ body: () async throws -> Void) async -> RPCStatus? {
        do {
            try await body()
            return .ok
        } catch {
            return RPCError(mapping: error).status
        }
    }

    @Test("a worker serving a base model other than all-MiniLM-L6-v2 accepts the adapters it trains, which name that model")
    func trainsOnAnotherBaseModel() async throws {
        // The same weights under another model's name: what a worker serving its own encoder sees.
        let model = Harness.temporaryDirectory() + "/my-encoder"
        try FileManager.default.createDirectory(atPath: model, withIntermediateDirectories: true)
        for file in try FileManager.default.contentsOfDirectory(atPath: Harness.modelDirectory) {
            try FileManager.default.createSymbolicLink(atPath: model + "/" + file, withDestinationPath: Harness.modelDirectory + "/" + file)
        }
        let offline = try OfflineServices {
            $0.modelDirectory = model
            $0.baseModelNames = ["acme/my-encoder"]
        }
        _ = try await TrainingHandlers(services: offline.services).train(Self.request(epochs: 1), RPCContext(actor: "tester"))
        await offline.services.training.waitUntilIdle()
        let entry = try await offline.services.registry.resolve(name: "home", version: "v1")
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: entry.path + "/adapter_config.json"))) as? [String: Any]
        #expect(config?["base_model_name_or_path"] as? String == "acme/my-encoder")
        #expect(!offline.events.contains { $0.event == .trainingFailed }, "\(offline.events.map(\.reason))")
    }

    @Test("a training is accepted at once, reports its progress, and stages the version with its figures in the audit trail")
    func trainsAndStages() async throws {
        let offline = try OfflineServices()
        let handlers = TrainingHandlers(services: offline.services)
        let reply = try await handlers.train(Self.request(), RPCContext(actor: "tester"))
        #expect(reply.examples == 6 && reply.labels == ["lights", "alarm"] && reply.totalSteps == 4)
        await offline.services.training.waitUntilIdle()
        let entry = try await offline.services.registry.resolve(name: "home", version: "v1")
        #expect(entry.record.state == .active, "a name's first version is active")
        #expect(entry.record.labels == "lights\nalarm")
        let trail = try await offline.services.registry.history(name: "home")
        let trained = try #require(trail.first { $0.action == .trained })
        #expect(trained.reason.contains("6 examples") && trained.reason.contains("2 epochs") && trained.reason.contains("final loss"), "\(trained.reason)")
        let events = offline.events.map(\.event)
        #expect(events.first == .training && events.contains(.loaded) && events.last == .trained, "\(events)")
        #expect(offline.events.contains { $0.training?.totalSteps == 4 }, "progress reports carry the step and the loss")
        #expect(!FileManager.default.fileExists(atPath: offline.dataDirectory + "/training/home@v1"), "the training's own files are gone")
        // The new version serves.
        let result = try await InferenceHandlers(services: offline.services).infer({
            var infer = Adapterd_V1_InferRequest()
            infer.text = "lights on please"
            infer.adapter = "home"
            return infer
        }(), RPCContext())
        #expect(["lights", "alarm"].contains(result.label))
    }

    @Test("stored feedback is used by a later training; one training runs at a time; a cancelled one stages nothing")
    func feedbackBusyAndCancel() async throws {
        let offline = try OfflineServices()
        let handlers = TrainingHandlers(services: offline.services)
        var feedback = Adapterd_V1_FeedbackRequest()
        feedback.name = "home"
        for (text, label) in Self.examples {
            feedback.text = text
            feedback.label = label
            _ = try await handlers.feedback(feedback, RPCContext())
        }
        feedback.text = "is it going to rain"
        feedback.label = "weather"
        #expect(try await handlers.feedback(feedback, RPCContext()).stored == 7)
        var request = Self.request(epochs: 500, examples: [])
        request.useFeedback = true
        let reply = try await handlers.train(request, RPCContext())
        #expect(reply.examples == 7 && reply.labels == ["lights", "alarm", "weather"])
        #expect(await Self.status { _ = try await handlers.train(Self.request(version: "v2"), RPCContext()) } == .resourceExhausted, "a second training while one runs")
        #expect(await Harness.eventually(timeout: .seconds(20)) { offline.events.contains { $0.training != nil } }, "no progress within 20 s")
        var cancel = Adapterd_V1_CancelTrainingRequest()
        cancel.name = "home"
        cancel.version = "v1"
        _ = try await handlers.cancel(cancel, RPCContext())
        await offline.services.training.waitUntilIdle()
        #expect(offline.events.last?.event == .trainingCancelled)
        #expect(await Self.status { _ = try await offline.services.registry.resolve(name: "home", version: "v1") } == .notFound, "nothing staged")
        #expect(await Self.status { _ = try await handlers.cancel(cancel, RPCContext()) } == .notFound)
    }

    @Test("a training over the memory budget, with one label, or for a registered version is refused before it starts")
    func refusals() async throws {
        let offline = try OfflineServices { $0.trainingMemoryBudgetBytes = 1 << 20 }
        let handlers = TrainingHandlers(services: offline.services)
        #expect(await Self.status { _ = try await handlers.train(Self.request(), RPCContext()) } == .resourceExhausted)
        let roomy = try OfflineServices()
        let others = TrainingHandlers(services: roomy.services)
        #expect(await Self.status { _ = try await others.train(Self.request(examples: Array(Self.examples.prefix(3))), RPCContext()) } == .invalidArgument)
        _ = try await roomy.services.registry.load(name: "home", version: "v1", path: Harness.adapterDirectory("intent"), actor: "test")
        #expect(await Self.status { _ = try await others.train(Self.request(), RPCContext()) } == .alreadyExists)
        #expect(offline.events.isEmpty && roomy.events.allSatisfy { $0.event != .training })
    }

    @Test("a training past training.maxSeconds stops, stages nothing and says why")
    func timeLimit() async throws {
        let offline = try OfflineServices { $0.trainingMaxSeconds = 0 }
        _ = try await TrainingHandlers(services: offline.services).train(Self.request(epochs: 50), RPCContext())
        await offline.services.training.waitUntilIdle()
        let last = try #require(offline.events.last)
        #expect(last.event == .trainingFailed && last.reason.contains("training.maxSeconds"), "\(last)")
        #expect(await Self.status { _ = try await offline.services.registry.resolve(name: "home", version: "v1") } == .notFound)
    }
}
