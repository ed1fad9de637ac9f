import AdapterEngine
import AdapterdTestSupport
import Testing

@Suite("WordPieceTokenizer")
struct WordPieceTokenizerTests {
    @Test("A text far longer than the model takes gives the same ids as its beginning, whatever the piece boundaries")
    func longTextsTokeniseAsTheirBeginning() {
        let tokenizer = Fixtures.model.tokenizer
        let sentence = "The pump's bearing vibrates at 7.5 mm/s — check it, Ünal! "
        let long = String(repeating: sentence, count: 50_000)
        let short = String(repeating: sentence, count: 40)
        let encoded = tokenizer.encode(long)
        #expect(encoded.truncated)
        #expect(encoded.ids == tokenizer.encode(short).ids)
        // A run of thousands of characters without whitespace is cut into pieces: each over-long word is [UNK]
        // (one per piece instead of one in all), and the words after it tokenise as usual.
        let unbroken = tokenizer.encode(String(repeating: "x", count: 10_000) + " pump")
        let pump = tokenizer.encode("pump").ids
        let unknown = tokenizer.encode(String(repeating: "x", count: 300)).ids[1]
        #expect(Array(unbroken.ids.suffix(2)) == Array(pump.suffix(2)))
        #expect(unbroken.ids.dropFirst().dropLast(2).allSatisfy { $0 == unknown })
    }

    @Test("gives exactly PyTorch's token ids for every reference case", arguments: Fixtures.cases.tokenizer.indices)
    func matchesReferenceIDs(index: Int) {
        let reference = Fixtures.cases.tokenizer[index]
        #expect(Fixtures.model.tokenizer.encode(reference.text).ids == reference.input_ids, "\(reference.text)")
    }

    @Test("truncates long input to 128 ids ending in [SEP]")
    func truncatesToMaxLength() {
        let encoding = Fixtures.model.tokenizer.encode(String(repeating: "sensor reading ", count: 200))
        #expect(encoding.ids.count == 128)
        #expect(encoding.truncated)
        #expect(encoding.ids.first == 101)
        #expect(encoding.ids.last == 102)
    }

    @Test("removes control characters and splits CJK ideographs and punctuation")
    func normalisesLikeBert() {
        let tokenizer = Fixtures.model.tokenizer
        #expect(tokenizer.encode("lock\u{0}\u{200B} the\tdoor").ids == tokenizer.encode("lock the door").ids)
        #expect(tokenizer.encode("東京").ids.count == 4)
        #expect(tokenizer.encode("door!").ids == tokenizer.encode("door !").ids)
        #expect(tokenizer.encode("RÉSUMÉ").ids == tokenizer.encode("resume").ids)
    }

    @Test("maps unknown words and over-long words to [UNK]")
    func unknownWords() {
        let tokenizer = Fixtures.model.tokenizer
        #expect(tokenizer.encode("🙂").ids == [101, 100, 102])
        #expect(tokenizer.encode(String(repeating: "a", count: 101)).ids == [101, 100, 102])
    }

    @Test("loads the same vocabulary from vocab.txt as from tokenizer.json")
    func vocabTextMatchesTokenizerJSON() throws {
        let directory = Fixtures.temporaryDirectory()
        try FileManagerCopy.copy(Fixtures.modelDirectory + "/vocab.txt", to: directory + "/vocab.txt")
        let fromVocab = try WordPieceTokenizer(modelDirectory: directory)
        for reference in Fixtures.cases.tokenizer {
            #expect(fromVocab.encode(reference.text).ids == reference.input_ids)
        }
    }

    @Test("a directory without tokenizer files is a clear error")
    func missingFiles() {
        #expect(throws: TokenizerError.self) { try WordPieceTokenizer(modelDirectory: Fixtures.temporaryDirectory()) }
    }
}
