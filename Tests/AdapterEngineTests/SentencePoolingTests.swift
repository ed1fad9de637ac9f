import AdapterEngine
import Foundation
import Testing

/// The pooling a model's sentence-transformers layout declares, on a bge-style checkpoint (CLS + Normalize) from the
/// shared encoder zoo, against what PyTorch + sentence-transformers computed.
@Suite("SentencePooling")
struct SentencePoolingTests {
    static let zoo = Fixtures.root + "/Tests/AdapterEngineTests/Fixtures/encoder-zoo"

    /// `Fixtures/encoder-zoo/bert-cls.json`: the base model's and its LoRA `intent` adapter's cases from the zoo.
    struct Reference: Decodable {
        typealias Case = ZooFamilyReference.Case

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
        let intent: Adapter

        static func load() throws -> Reference {
            try JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: zoo + "/bert-cls.json")))
        }
    }

    @Test("a bge-style checkpoint (CLS pooling, then Normalize) embeds as PyTorch does, token ids included")
    func clsPoolingMatchesReference() throws {
        let model = try BertModel(directory: Self.zoo + "/models/bert-cls")
        #expect(model.config.pooling == SentencePooling(mode: .cls, normalize: true))
        let reference = try Reference.load()
        let engine = InferenceEngine(model: model)
        for expected in reference.cases {
            #expect(engine.encode(expected.text).ids == expected.ids, "\(expected.text)")
            let embedding = try #require(engine.run([expected.text], adapter: nil).first?.output.embedding)
            #expect(Fixtures.maxAbsDiff(embedding, expected.embedding) < reference.tolerance, "\(expected.text)")
        }
    }

    @Test("a LoRA classifier on the bge-style checkpoint gives PyTorch+PEFT's logits and labels")
    func adapterOnClsCheckpointMatchesReference() throws {
        let model = try BertModel(directory: Self.zoo + "/models/bert-cls")
        let reference = try Reference.load()
        let adapter = try LoRAAdapter(directory: Self.zoo + "/adapters/bert-cls/intent", model: model)
        #expect(adapter.labels == reference.intent.labels)
        let results = InferenceEngine(model: model).run(reference.intent.cases.map(\.text), adapter: adapter)
        for (expected, result) in zip(reference.intent.cases, results) {
            let logits = try #require(result.output.logits)
            #expect(Fixtures.maxAbsDiff(logits, expected.logits) < reference.tolerance, "\(expected.text)")
            #expect(result.output.label == expected.label, "\(expected.text)")
        }
    }

    @Test("all-MiniLM-L6-v2's layout gives the mean, normalised, as before")
    func minilmIsMeanNormalized() {
        #expect(Fixtures.model.config.pooling == .meanNormalized)
    }

    @Test("each mode pools as sentence-transformers does")
    func modes() {
        let rows: [Float] = [3, 0, 1, 4]  // two rows of width 2
        rows.withUnsafeBufferPointer { pointer in
            let base = pointer.baseAddress!
            #expect(SentencePooling(mode: .cls, normalize: false).pool(base, length: 2, width: 2) == [3, 0])
            #expect(SentencePooling(mode: .mean, normalize: false).pool(base, length: 2, width: 2) == [2, 2])
            #expect(SentencePooling(mode: .max, normalize: false).pool(base, length: 2, width: 2) == [3, 4])
            let sqrtLength = SentencePooling(mode: .meanSqrtLength, normalize: false).pool(base, length: 2, width: 2)
            #expect(Fixtures.maxAbsDiff(sqrtLength, [Float(4 / 2.0.squareRoot()), Float(4 / 2.0.squareRoot())]) < 1e-6)
            #expect(SentencePooling(mode: .cls, normalize: true).pool(base, length: 2, width: 2) == [1, 0])
            // Weights 1 and 2 by position; the last row.
            let weighted = SentencePooling(mode: .weightedMean, normalize: false).pool(base, length: 2, width: 2)
            #expect(Fixtures.maxAbsDiff(weighted, [5 / 3, 8 / 3]) < 1e-6)
            #expect(SentencePooling(mode: .lastToken, normalize: false).pool(base, length: 2, width: 2) == [1, 4])
        }
    }

    @Test("a pooling the engine cannot run (two modes at once), and a model_type it does not run, are refused with their names; weighted mean and last token are read")
    func unsupportedIsRefused() throws {
        let directory = Fixtures.temporaryDirectory()
        try FileManager.default.createDirectory(atPath: directory + "/1_Pooling", withIntermediateDirectories: true)
        try #"[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}, {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]"#
            .write(toFile: directory + "/modules.json", atomically: true, encoding: .utf8)
        // Two modes at once (sentence-transformers concatenates them) is not run.
        try #"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": true, "pooling_mode_weightedmean_tokens": false}"#
            .write(toFile: directory + "/1_Pooling/config.json", atomically: true, encoding: .utf8)
        #expect(throws: ModelError.self) { try SentencePooling(modelDirectory: directory) }
        do {
            _ = try SentencePooling(modelDirectory: directory)
        } catch {
            #expect(error.description.contains("cls_token + mean_tokens"), "\(error)")
        }
        for (flag, mode) in [("pooling_mode_weightedmean_tokens", SentencePooling.Mode.weightedMean), ("pooling_mode_lasttoken", .lastToken)] {
            try #"{"\#(flag)": true, "pooling_mode_mean_tokens": false}"#.write(toFile: directory + "/1_Pooling/config.json", atomically: true, encoding: .utf8)
            #expect(try SentencePooling(modelDirectory: directory).mode == mode)
        }
        do {
            _ = try BertConfig(path: Self.zoo + "/models/deberta-unsupported/config.json")
            Issue.record("a deberta-v2 checkpoint was accepted")
        } catch {
            #expect(error.description.contains("deberta-v2"), "\(error)")
        }
    }
}
