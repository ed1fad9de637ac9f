import AdapterdAPI
import AdapterdClient
import AdapterdCore
import AdapterdTestSupport
import AdapterEngine
import Foundation
import MQTTRPC
import Testing

/// Infer with a text pair (`text_pair`) through a real mosquitto: the worker tokenises it with the model's pair
/// template and token types, as the engine does locally.
@Suite("Infer with a text pair")
struct PairInferTests {
    @Test("a pair is tokenised as [CLS] A [SEP] B [SEP] with B of token type 1, and answers what the engine computes for that pair")
    func pairMatchesTheEngine() async throws {
        let broker = try Harness.broker()
        defer { broker.stop() }
        let configuration = Harness.configuration(broker: broker)
        let worker = try await RunningWorker(configuration)
        let client = try await AdapterdClient(brokerURL: broker.url, worker: configuration.workerID)
        defer { client.close() }
        var request = Adapterd_V1_InferRequest()
        (request.text, request.textPair, request.adapter) = ("is the back door locked", "the door sensor reads closed", "intent")
        let reply = try await client.infer(request)
        #expect(RPCStatus(reply.status) == .ok, "\(reply.error)")
        let engine = worker.worker.engine
        let adapter = try LoRAAdapter(directory: Harness.adapterDirectory("intent"), model: engine.model)
        let expected = try engine.run(pairs: [(request.text, request.textPair, adapter)])[0]
        let single = try engine.run(pairs: [(request.text, nil, adapter)])[0]
        #expect(Int(reply.tokens) == expected.tokens && expected.tokens > single.tokens)
        #expect(Harness.maxAbsDiff(reply.logits, try #require(expected.output.logits)) < 1e-4)
        #expect(Harness.maxAbsDiff(try #require(single.output.logits), try #require(expected.output.logits)) > 1e-3, "the second text changed the answer")
        try await worker.stop()
    }
}

/// Infer on a token classifier, handlers called directly: the reply's entities.
@Suite("Infer on a token classifier")
struct EntityInferTests {
    @Test(
        "a TOKEN_CLS adapter's reply carries the entities the engine groups, with their character spans in the request's text (WordPiece on BERT, byte-level BPE on ModernBERT)",
        arguments: [("bert-cls", "bert-cls/entities"), ("modernbert", "modernbert/slots")])
    func replyCarriesEntities(model: String, adapterPath: String) async throws {
        let zoo = Harness.root + "/Tests/AdapterEngineTests/Fixtures/encoder-zoo"
        let offline = try OfflineServices { $0.modelDirectory = zoo + "/models/" + model }
        defer { withExtendedLifetime(offline) {} }
        var load = Adapterd_V1_LoadAdapterRequest()
        (load.name, load.version, load.path) = ("entities", "v1", zoo + "/adapters/" + adapterPath)
        _ = try await AdapterHandlers(services: offline.services).load(load, RPCContext())
        var request = Adapterd_V1_InferRequest()
        (request.text, request.adapter) = ("Close The Office Blinds", "entities")
        let reply = try await InferenceHandlers(services: offline.services).infer(request, RPCContext())
        let engine = offline.services.engine
        let adapter = try LoRAAdapter(directory: load.path, model: engine.model)
        let result = engine.run([(request.text, adapter as LoRAAdapter?)])[0]
        let labels = try #require(adapter.labels)
        guard case let .tokenClassification(logits, _) = result.output else {
            Issue.record("not a token classification")
            return
        }
        let expected = try #require(engine.model.tokenizer.entities(text: request.text, ids: result.ids, logits: logits, labels: labels))
        #expect(!expected.isEmpty && reply.tokenPredictions.count == result.ids.count)
        #expect(reply.entities.map(\.label) == expected.map(\.label) && reply.entities.map(\.word) == expected.map(\.word))
        #expect(reply.entities.map { [Int($0.start), Int($0.end)] } == expected.map { [$0.start, $0.end] })
    }
}
