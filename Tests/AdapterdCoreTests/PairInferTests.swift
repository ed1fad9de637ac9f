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
