import AdapterEngine
import Foundation
import Testing

/// Token classification's words (issue 25): character offsets of every tokenizer kind (WordPiece, byte-level BPE with
/// and without trim_offsets, Unigram with Metaspace) against Hugging Face's fast tokenizers, and entities against
/// transformers' token-classification pipeline (`aggregation_strategy="simple"`) on the encoder zoo's
/// `bert-cls/entities` and `modernbert/slots` adapters (`scripts/make-entity-reference`).
@Suite("Entity grouping")
struct EntityGroupingTests {
    struct Reference: Decodable {
        struct OffsetCase: Decodable {
            let text: String
            let ids: [Int32]
            let offsets: [[Int]]
        }

        struct EntityCase: Decodable {
            struct Group: Decodable {
                let label: String
                let score: Float
                let word: String
                let start: Int
                let end: Int
            }

            let text: String
            let entities: [Group]
        }

        struct Entities: Decodable {
            let model: String
            let adapter: String
            let cases: [EntityCase]
        }

        let offsets: [String: [OffsetCase]]
        let entities: Entities
        let moreEntities: [Entities]
    }

    static let reference: Reference = {
        let path = EncoderFamilyTests.zoo + "/entity-groups.json"
        return try! JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }()

    @Test(
        "offsets are Hugging Face's for every tokenizer kind, in characters through case, accents (composed and not), punctuation, CJK, emoji, runs of spaces, tabs and newlines, with the same ids as encode",
        arguments: ["all-MiniLM-L6-v2", "bert-cls", "distilbert", "roberta", "modernbert", "xlm-roberta"])
    func offsetsMatchTokenizers(name: String) throws {
        let directory = name == "all-MiniLM-L6-v2" ? Fixtures.modelDirectory : EncoderFamilyTests.zoo + "/models/" + name
        let tokenizer = try Tokenizer(modelDirectory: directory)
        for expected in try #require(Self.reference.offsets[name]) {
            let (ids, offsets) = tokenizer.encodeWithOffsets(expected.text)
            #expect(ids == expected.ids && ids == tokenizer.encode(expected.text).ids, "\(name): \(expected.text)")
            let spans = offsets.map { $0.map { [$0.lowerBound, $0.upperBound] } ?? [0, 0] }
            #expect(spans == expected.offsets, "\(name): \(expected.text): \(spans) vs \(expected.offsets)")
        }
    }

    @Test(
        "entities grouped from the token classifier's output are the pipeline's (WordPiece on BERT, byte-level BPE on ModernBERT): labels, spans and words exact, scores within 1e-4",
        arguments: ["bert-cls", "modernbert"])
    func entitiesMatchPipeline(modelName: String) throws {
        let reference = try #require(([Self.reference.entities] + Self.reference.moreEntities).first { $0.model == modelName })
        let model = try BertModel(directory: EncoderFamilyTests.zoo + "/models/" + modelName)
        let adapter = try LoRAAdapter(directory: EncoderFamilyTests.zoo + "/adapters/" + reference.adapter, model: model)
        let engine = InferenceEngine(model: model)
        let cases = reference.cases
        let results = engine.run(cases.map { ($0.text, adapter as LoRAAdapter?) })
        var compared = 0
        for (expected, result) in zip(cases, results) {
            let labels = try #require(adapter.labels)
        guard case let .tokenClassification(logits, _) = result.output else {
                Issue.record("\(expected.text): not a token classification")
                continue
            }
            let entities = try #require(model.tokenizer.entities(text: expected.text, ids: result.ids, logits: logits, labels: labels))
            #expect(entities.map(\.label) == expected.entities.map(\.label), "\(expected.text)")
            #expect(entities.map(\.word) == expected.entities.map(\.word), "\(expected.text)")
            #expect(entities.map { [$0.start, $0.end] } == expected.entities.map { [$0.start, $0.end] }, "\(expected.text)")
            #expect(zip(entities, expected.entities).allSatisfy { abs($0.score - $1.score) < 1e-4 }, "\(expected.text)")
            compared += expected.entities.count
        }
        #expect(compared >= 20)
    }

    @Test("B- starts a new entity, I- and bare tags continue one of the same type, O is dropped, specials are skipped")
    func groupingRules() {
        let labels = ["O", "B-DEV", "I-DEV", "ROOM"]
        func row(_ best: Int) -> [Float] { (0..<labels.count).map { $0 == best ? 5 : 0 } }
        // [CLS] lamp ##s B-DEV lamp I-DEV kitchen ROOM hall ROOM the O [SEP]
        let logits = [row(0), row(1), row(2), row(1), row(2), row(3), row(3), row(0), row(0)]
        let offsets: [Range<Int>?] = [nil, 0..<4, 4..<5, 6..<10, 11..<15, 16..<23, 24..<28, 29..<32, nil]
        let tokens = ["[CLS]", "lamp", "##s", "lamp", "two", "kitchen", "hall", "the", "[SEP]"]
        let entities = EntityGrouping.simple(
            logits: logits, labels: labels, offsets: offsets, token: { tokens[$0] },
            decode: { $0.joined(separator: " ").replacingOccurrences(of: " ##", with: "") })
        #expect(entities.map(\.label) == ["DEV", "DEV", "ROOM"])
        #expect(entities.map(\.word) == ["lamps", "lamp two", "kitchen hall"])
        #expect(entities.map { $0.start..<$0.end } == [0..<5, 6..<15, 16..<28])
    }
}
