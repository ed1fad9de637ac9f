import AdapterEngine
import Foundation
import Testing

/// Byte-level BPE against the ids Hugging Face tokenizers gave for the encoder zoo's RoBERTa (RobertaProcessing) and
/// ModernBERT (NFC, TemplateProcessing) tokenizers, on texts with accents, emoji, Cyrillic, CJK, digits and runs of
/// spaces.
@Suite("BPETokenizer")
struct BPETokenizerTests {
    static let directory = Fixtures.root + "/Tests/AdapterEngineTests/Fixtures/encoder-zoo"

    struct Reference: Decodable {
        struct Case: Decodable {
            let text: String
            let ids: [Int32]
        }

        let models: [String: [Case]]
    }

    @Test("ids equal Hugging Face tokenizers' on every reference text", arguments: ["roberta", "modernbert"])
    func idsMatchReference(model: String) throws {
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: Self.directory + "/tokenizers.json")))
        let tokenizer = try BPETokenizer(path: Self.directory + "/tokenizers/\(model)/tokenizer.json")
        let cases = try #require(reference.models[model])
        #expect(cases.count >= 7)
        for expected in cases {
            #expect(tokenizer.encode(expected.text) == expected.ids, "\(model): \(expected.text)")
        }
    }

    @Test("special tokens written in the text are their ids; long texts are cut keeping the closing token")
    func specialsAndTruncation() throws {
        let tokenizer = try BPETokenizer(path: Self.directory + "/tokenizers/roberta/tokenizer.json", maxLength: 8)
        let ids = tokenizer.encode("a</s>b")
        #expect(ids.first == 0 && ids.last == 2 && ids.filter { $0 == 2 }.count == 2, "\(ids)")
        let long = tokenizer.encode(String(repeating: "vibration ", count: 20))
        #expect(long.count == 8 && long.first == 0 && long.last == 2)
    }

    @Test("components it does not implement are refused by name")
    func refusals() throws {
        let directory = Fixtures.temporaryDirectory()
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.directory + "/tokenizers/roberta/tokenizer.json"))) as! [String: Any]
        json["normalizer"] = ["type": "NFKD"]
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: directory + "/tokenizer.json"))
        #expect {
            try BPETokenizer(path: directory + "/tokenizer.json")
        } throws: { error in
            "\(error)".contains("NFKD")
        }
    }
}
