import AdapterEngine
import Foundation
import Testing

/// DistilBERT (issue 25): its own config fields and weight names, no token types, PEFT's module names
/// (`q_lin`…`lin2`) and its head (`pre_classifier`, ReLU, `classifier`), against PyTorch + transformers + PEFT on the
/// encoder zoo's checkpoint (`Fixtures/encoder-zoo/distilbert.json`).
@Suite("DistilBERT")
struct DistilBERTTests {
    static let reference = ZooFamilyReference.load("distilbert")
    static let model: BertModel = try! BertModel(directory: EncoderFamilyTests.zoo + "/models/distilbert")

    @Test("a DistilBERT checkpoint (cased WordPiece, no token types) gives PyTorch's ids and mean-pooled embeddings")
    func embeddings() throws {
        #expect(Self.model.config.family == .distilbert && Self.model.config.positionOffset == 0)
        #expect(Self.model.config.hiddenSize == 48 && Self.model.config.numHiddenLayers == 3 && Self.model.config.intermediateSize == 96)
        let engine = InferenceEngine(model: Self.model)
        for expected in Self.reference.cases {
            #expect(engine.encode(expected.text).ids == expected.ids, "\(expected.text)")
            let embedding = try #require(engine.run([expected.text], adapter: nil).first?.output.embedding)
            #expect(Fixtures.maxAbsDiff(embedding, expected.embedding) < Self.reference.tolerance, "\(expected.text)")
        }
    }

    @Test(
        "IA³ adapters on q_lin/k_lin/v_lin/lin2 with DistilBERT's head give PyTorch+PEFT's logits and labels on every kernel path, single- and multi-label",
        arguments: ["severity", "tags"], KernelPath.supported)
    func classifiers(name: String, path: KernelPath) throws {
        let expected = try #require(Self.reference.adapters.first { $0.name == name })
        let adapter = try LoRAAdapter(directory: EncoderFamilyTests.zoo + "/adapters/distilbert/" + name, model: Self.model)
        #expect(adapter.labels == expected.labels && adapter.head?.problemType.rawValue == expected.problemType)
        let engine = InferenceEngine(model: Self.model, path: path)
        let texts = expected.cases.map(\.text)
        // In one batch with base-model rows between them: the adapter's terms stay on its own rows.
        let rows = texts.flatMap { [($0, adapter as LoRAAdapter?), ($0, nil)] }
        let results = engine.run(rows).enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
        for (reference, result) in zip(expected.cases, results) {
            #expect(result.ids == reference.ids, "\(name): \(reference.text)")
            let logits = try #require(result.output.logits)
            #expect(Fixtures.maxAbsDiff(logits, try #require(reference.logits)) < Self.reference.tolerance, "\(name) on \(path): \(reference.text)")
            if let label = reference.label { #expect(result.output.label == label, "\(name): \(reference.text)") }
            if let on = reference.labelsOn { #expect(adapter.head?.labelsOn(logits) == on, "\(name): \(reference.text)") }
        }
    }
}
