import AdapterEngine
import Foundation
import Testing

/// Encoder families beyond BERT, against what PyTorch + transformers (and PEFT) computed for the encoder zoo's small
/// checkpoints (`Fixtures/encoder-zoo/{family}.json`).
@Suite("Encoder families")
struct EncoderFamilyTests {
    static let zoo = Fixtures.root + "/Tests/AdapterEngineTests/Fixtures/encoder-zoo"

    struct Reference: Decodable {
        typealias Case = ZooFamilyReference.Case

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

/// What a head's outputs mean (`problem_type` in `labels.json`, as transformers' config names it).
@Suite("Classifier problem types")
struct ProblemTypeTests {
    struct Regression: Decodable {
        struct Case: Decodable { let text: String; let value: Float }
        let name: String
        let cases: [Case]
    }

    struct Reference: Decodable { let regression: Regression }

    @Test("a regression head (one output) gives PyTorch+PEFT's value on XLM-RoBERTa")
    func regression() throws {
        let zoo = EncoderFamilyTests.zoo
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: zoo + "/xlm-roberta.json"))).regression
        let model = try BertModel(directory: zoo + "/models/xlm-roberta")
        let adapter = try LoRAAdapter(directory: zoo + "/adapters/xlm-roberta/" + reference.name, model: model)
        #expect(adapter.head?.problemType == .regression)
        for (expected, result) in zip(reference.cases, InferenceEngine(model: model).run(reference.cases.map(\.text), adapter: adapter)) {
            let value = try #require(result.output.logits?.first)
            #expect(abs(value - expected.value) < 1e-4, "\(expected.text)")
        }
    }

    @Test("a multi-label head turns on every label whose logit is above 0; an unknown problem_type is refused")
    func multiLabel() throws {
        let directory = Fixtures.temporaryDirectory()
        let source = Fixtures.adapterDirectory("intent")
        for file in ["adapter_config.json", "adapter_model.safetensors"] {
            try FileManager.default.copyItem(atPath: source + "/" + file, toPath: directory + "/" + file)
        }
        let labels = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: source + "/labels.json"))) as! [String: Any]
        var multi = labels
        multi["problem_type"] = "multi_label_classification"
        try JSONSerialization.data(withJSONObject: multi).write(to: URL(fileURLWithPath: directory + "/labels.json"))
        let adapter = try LoRAAdapter(directory: directory, model: Fixtures.model)
        let head = try #require(adapter.head)
        #expect(head.problemType == .multiLabel)
        // The logits are the single-label adapter's (problem_type changes how they are read, not what is computed).
        let single = try Fixtures.adapter("intent")
        let text = "turn on the kitchen lights and lock the door"
        let logits = try #require(InferenceEngine(model: Fixtures.model).run([text], adapter: adapter)[0].output.logits)
        #expect(logits == InferenceEngine(model: Fixtures.model).run([text], adapter: single)[0].output.logits)
        #expect(head.labelsOn(logits) == zip(head.labels, logits).filter { $0.1 > 0 }.map(\.0))
        #expect(!head.labelsOn(logits).isEmpty)

        multi["problem_type"] = "ranking"
        try JSONSerialization.data(withJSONObject: multi).write(to: URL(fileURLWithPath: directory + "/labels.json"))
        #expect(throws: AdapterError.self) { try LoRAAdapter(directory: directory, model: Fixtures.model) }
    }
}
