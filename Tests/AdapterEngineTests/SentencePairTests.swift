import AdapterEngine
import Foundation
import Testing

/// Sentence pairs (issue 25): the tokenizer's pair template and a cross-encoder on it, against PyTorch +
/// transformers + PEFT on the encoder zoo's `roberta/nli-pair` (rsLoRA, three labels).
@Suite("Sentence pairs")
struct SentencePairTests {
    struct Reference: Decodable {
        struct Case: Decodable {
            let text: String
            let text_pair: String?
            let ids: [Int32]
            let logits: [Float]
            let label: String
        }

        let tolerance: Float
        let labels: [String]
        let cases: [Case]
    }

    static let reference: Reference = {
        let path = EncoderFamilyTests.zoo + "/roberta-nli-pair.json"
        return try! JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }()

    @Test("a cross-encoder on RoBERTa's <s> A </s></s> B </s> gives PyTorch+PEFT's ids, logits and labels for pairs and a lone text, on every kernel path", arguments: KernelPath.supported)
    func crossEncoder(path: KernelPath) throws {
        let model = try BertModel(directory: EncoderFamilyTests.zoo + "/models/roberta")
        let adapter = try LoRAAdapter(directory: EncoderFamilyTests.zoo + "/adapters/roberta/nli-pair", model: model)
        let engine = InferenceEngine(model: model, path: path)
        let results = try engine.run(pairs: Self.reference.cases.map { ($0.text, $0.text_pair, adapter) })
        for (expected, result) in zip(Self.reference.cases, results) {
            #expect(result.ids == expected.ids, "\(expected.text) | \(expected.text_pair ?? "-")")
            #expect(Fixtures.maxAbsDiff(try #require(result.output.logits), expected.logits) < Self.reference.tolerance, "\(path): \(expected.text)")
            #expect(result.output.label == expected.label)
        }
    }

    @Test("BERT's pair template gives [CLS] A [SEP] B [SEP] with the second part of token type 1, and the longer text is cut first")
    func bertPairTemplate() throws {
        let model = try BertModel(directory: EncoderFamilyTests.zoo + "/models/bert-cls")
        let a = model.tokenizer.encode("the kitchen lamp"), b = model.tokenizer.encode("turn it off now please")
        let pair = try model.tokenizer.encode("the kitchen lamp", pair: "turn it off now please")
        #expect(pair.ids == a.ids + b.ids.dropFirst())
        #expect(pair.typeIds == [Int32](repeating: 0, count: a.ids.count) + [Int32](repeating: 1, count: b.ids.count - 1))
        // A long first text is cut; the short second one stays whole, with its [SEP].
        let short = model.tokenizer.encode("turn it off")
        let long = String(repeating: "lamp ", count: 300)
        let single = model.tokenizer.encode(long)
        let cut = try model.tokenizer.encode(long, pair: "turn it off")
        #expect(cut.truncated && cut.ids.count == single.ids.count, "a cut pair is as long as the longest single text")
        #expect(Array(cut.ids.suffix(short.ids.count - 1)) == Array(short.ids.dropFirst()))
    }
}
