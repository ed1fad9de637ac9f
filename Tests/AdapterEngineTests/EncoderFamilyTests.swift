import AdapterEngine
import Foundation
import Testing

/// Encoder families beyond BERT, against what PyTorch + transformers (and PEFT) computed for the encoder zoo's small
/// checkpoints (`Fixtures/encoder-zoo/{family}.json`).
@Suite("Encoder families")
struct EncoderFamilyTests {
    static let zoo = Fixtures.root + "/Tests/AdapterEngineTests/Fixtures/encoder-zoo"

    struct Reference: Decodable {
        struct Case: Decodable {
            let text: String
            let ids: [Int32]
            let embedding: [Float]
        }

        struct AdapterCase: Decodable {
            let text: String
            let logits: [Float]
            let label: String
        }

        struct Adapter: Decodable {
            let labels: [String]
            let cases: [AdapterCase]
        }

        let tolerance: Float
        let cases: [Case]
        let sentiment: Adapter
    }

    static func roberta() throws -> (BertModel, Reference) {
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: zoo + "/roberta.json")))
        return (try BertModel(directory: zoo + "/models/roberta"), reference)
    }

    @Test("RoBERTa (byte-level BPE, positions after the padding index, mean pooling) embeds as PyTorch does, ids included")
    func robertaEmbeddings() throws {
        let (model, reference) = try Self.roberta()
        #expect(model.config.modelType == "roberta" && model.config.positionOffset == 2)
        let engine = InferenceEngine(model: model)
        for expected in reference.cases {
            #expect(engine.encode(expected.text).ids == expected.ids, "\(expected.text)")
            let embedding = try #require(engine.run([expected.text], adapter: nil).first?.output.embedding)
            #expect(Fixtures.maxAbsDiff(embedding, expected.embedding) < reference.tolerance, "\(expected.text)")
        }
    }

    @Test("a LoRA classifier on RoBERTa (its head: dense, tanh, out_proj on <s>) gives PyTorch+PEFT's logits on every kernel path", arguments: KernelPath.supported)
    func robertaClassifier(path: KernelPath) throws {
        let (model, reference) = try Self.roberta()
        let adapter = try LoRAAdapter(directory: Self.zoo + "/adapters/roberta/sentiment", model: model)
        #expect(adapter.labels == reference.sentiment.labels)
        let results = InferenceEngine(model: model, path: path).run(reference.sentiment.cases.map(\.text), adapter: adapter)
        for (expected, result) in zip(reference.sentiment.cases, results) {
            #expect(Fixtures.maxAbsDiff(try #require(result.output.logits), expected.logits) < reference.tolerance, "\(expected.text)")
            #expect(result.output.label == expected.label, "\(expected.text)")
        }
    }
}
