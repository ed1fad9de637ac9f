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
            let name: String
            let labels: [String]
            let cases: [AdapterCase]
        }

        let tolerance: Float
        let cases: [Case]
        let adapter: Adapter
    }

    static func family(_ name: String) throws -> (BertModel, Reference) {
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: zoo + "/\(name).json")))
        return (try BertModel(directory: zoo + "/models/" + name), reference)
    }

    @Test(
        "RoBERTa (byte-level BPE) and XLM-RoBERTa (Unigram, Metaspace, normalised mean): positions after the padding index, embeddings and ids as PyTorch's",
        arguments: ["roberta", "xlm-roberta"])
    func embeddings(family: String) throws {
        let (model, reference) = try Self.family(family)
        #expect(model.config.modelType == family && model.config.positionOffset == 2)
        let engine = InferenceEngine(model: model)
        for expected in reference.cases {
            #expect(engine.encode(expected.text).ids == expected.ids, "\(family): \(expected.text)")
            let embedding = try #require(engine.run([expected.text], adapter: nil).first?.output.embedding)
            #expect(Fixtures.maxAbsDiff(embedding, expected.embedding) < reference.tolerance, "\(family): \(expected.text)")
        }
    }

    @Test(
        "classifiers on them (RoBERTa's head: dense, tanh, out_proj on <s>; LoRA on RoBERTa, DoRA on XLM-RoBERTa) give PyTorch+PEFT's logits on every kernel path",
        arguments: ["roberta", "xlm-roberta"], KernelPath.supported)
    func classifiers(family: String, path: KernelPath) throws {
        let (model, reference) = try Self.family(family)
        let adapter = try LoRAAdapter(directory: Self.zoo + "/adapters/\(family)/" + reference.adapter.name, model: model)
        #expect(adapter.labels == reference.adapter.labels)
        let results = InferenceEngine(model: model, path: path).run(reference.adapter.cases.map(\.text), adapter: adapter)
        for (expected, result) in zip(reference.adapter.cases, results) {
            #expect(Fixtures.maxAbsDiff(try #require(result.output.logits), expected.logits) < reference.tolerance, "\(family): \(expected.text)")
            #expect(result.output.label == expected.label, "\(family): \(expected.text)")
        }
    }
}
