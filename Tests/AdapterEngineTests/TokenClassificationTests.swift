import AdapterEngine
import Foundation
import Testing

/// Token classification (`task_type: TOKEN_CLS`, issue 25): the adapter's classifier on every token's final hidden
/// state, against PyTorch + transformers + PEFT on the encoder zoo's `bert-cls/entities` (LoRA, five BIO labels).
@Suite("Token classification")
struct TokenClassificationTests {
    struct Reference: Decodable {
        struct Case: Decodable {
            let text: String
            let ids: [Int32]
            let tokenLogits: [[Float]]
        }

        let tolerance: Float
        let labels: [String]
        let cases: [Case]
    }

    static let reference: Reference = {
        let path = EncoderFamilyTests.zoo + "/bert-cls-entities.json"
        return try! JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }()

    @Test("a TOKEN_CLS adapter gives PyTorch+PEFT's logits for every token, specials included, with each token's label, on every kernel path", arguments: KernelPath.supported)
    func tokenLogits(path: KernelPath) throws {
        let model = try BertModel(directory: EncoderFamilyTests.zoo + "/models/bert-cls")
        let adapter = try LoRAAdapter(directory: EncoderFamilyTests.zoo + "/adapters/bert-cls/entities", model: model)
        #expect(adapter.head?.perToken == true && adapter.labels == Self.reference.labels)
        let engine = InferenceEngine(model: model, path: path)
        // Beside sequence rows of the base model in one batch.
        let rows = Self.reference.cases.flatMap { [($0.text, adapter as LoRAAdapter?), ($0.text, nil)] }
        let results = engine.run(rows).enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
        for (expected, result) in zip(Self.reference.cases, results) {
            #expect(result.ids == expected.ids, "\(expected.text)")
            guard case let .tokenClassification(logits, labels) = result.output else {
                Issue.record("\(expected.text): not a token classification: \(result.output)")
                continue
            }
            #expect(logits.count == expected.ids.count && labels.count == expected.ids.count)
            for (index, (row, reference)) in zip(logits, expected.tokenLogits).enumerated() {
                #expect(Fixtures.maxAbsDiff(row, reference) < Self.reference.tolerance, "\(path) \(expected.text), token \(index)")
                let best = reference.indices.max { reference[$0] < reference[$1] }!
                #expect(labels[index] == Self.reference.labels[best], "\(expected.text), token \(index)")
            }
        }
    }

    @Test("INT8 checks token classifiers (calibrated like any classifier), with FP32's labels and logits near FP32's")
    func int8TokenClassifier() throws {
        let model = try BertModel(directory: EncoderFamilyTests.zoo + "/models/bert-cls")
        let adapter = try LoRAAdapter(directory: EncoderFamilyTests.zoo + "/adapters/bert-cls/entities", model: model)
        let int8 = InferenceEngine(model: model, precision: .int8)
        let fp32 = InferenceEngine(model: model)
        let text = Self.reference.cases[0].text
        let quantised = int8.run([text], adapter: adapter)[0], exact = fp32.run([text], adapter: adapter)[0]
        #expect(quantised.labelCheck != .unchecked && int8.calibrateLabelCheck(adapter) != nil)
        guard case let .tokenClassification(a, labels) = quantised.output, case let .tokenClassification(b, expected) = exact.output else {
            Issue.record("not token classifications")
            return
        }
        #expect(labels == expected)
        for (x, y) in zip(a, b) { #expect(Fixtures.maxAbsDiff(x, y) < 0.25) }
    }
}
