import AdapterEngine
import Foundation
import Testing

/// Every tokenizer kind against Hugging Face tokenizers on 400 seeded random texts made to be hard: runs of spaces,
/// tabs and newlines, contractions, composed and decomposed accents, CJK, emoji with modifiers, other scripts,
/// no-break and ideographic spaces, ligatures, and special tokens written in the text
/// (`Fixtures/encoder-zoo/tokenizer-fuzz.json`, `scripts/make-tokenizer-fuzz-reference`).
@Suite("Tokenizer")
struct TokenizerTests {
    struct Reference: Decodable {
        let texts: [String]
        let ids: [String: [[Int32]]]
    }

    static let reference: Reference = {
        let path = EncoderFamilyTests.zoo + "/tokenizer-fuzz.json"
        return try! JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }()

    @Test(
        "ids equal tokenizers' on every hard text, and the ids that come with character offsets are the same",
        arguments: ["all-MiniLM-L6-v2", "bert-cls", "distilbert", "roberta", "modernbert", "xlm-roberta"])
    func idsMatchTokenizers(name: String) throws {
        let directory = name == "all-MiniLM-L6-v2" ? Fixtures.modelDirectory : EncoderFamilyTests.zoo + "/models/" + name
        let tokenizer = try Tokenizer(modelDirectory: directory)
        let expected = try #require(Self.reference.ids[name])
        var differ = 0
        for (text, ids) in zip(Self.reference.texts, expected) {
            let encoded = tokenizer.encode(text).ids
            let withOffsets = tokenizer.encodeWithOffsets(text).ids
            if encoded != ids || withOffsets != ids {
                differ += 1
                if differ <= 3 { Issue.record("\(name): \(text.debugDescription): \(encoded) / \(withOffsets) vs \(ids)") }
            }
        }
        #expect(differ == 0, "\(name): \(differ) of \(expected.count) texts differ")
    }
}
