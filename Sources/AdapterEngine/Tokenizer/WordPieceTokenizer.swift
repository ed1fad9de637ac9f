import Foundation

/// The output of tokenising one text.
public struct Encoding: Sendable, Equatable {
    /// Token ids, `[CLS]` first and `[SEP]` last.
    public let ids: [Int32]
    /// Whether the text was cut to fit the maximum length.
    public let truncated: Bool
    /// Each id's token type (segment): 0 for a single text, 0 then 1 for a pair where the template says so.
    public let typeIds: [Int32]

    /// `ids`, cut or not, of the token types `typeIds` (all 0 when nil).
    public init(ids: [Int32], truncated: Bool, typeIds: [Int32]? = nil) {
        self.ids = ids
        self.truncated = truncated
        self.typeIds = typeIds ?? [Int32](repeating: 0, count: ids.count)
    }
}

/// BERT's WordPiece tokenizer: normalise, split on whitespace and punctuation, then greedy
/// longest-match-first sub-words, wrapped in `[CLS] … [SEP]` and truncated to `maxLength` ids.
public struct WordPieceTokenizer: Sendable {
    /// Text normalisation applied first.
    public let normalizer: BertNormalizer
    /// Longest sequence produced, special tokens included.
    public let maxLength: Int
    /// Words longer than this many characters become `[UNK]`.
    public let maxInputCharsPerWord: Int
    /// Prefix marking a sub-word that continues a word.
    public let continuingSubwordPrefix: String
    /// Ids by the UTF-8 bytes of their token: a String key would match canonically equivalent tokens (a decomposed
    /// `e` + U+0301 finding `é`), where tokenizers compares exact characters.
    private let vocabulary: [[UInt8]: Int32]
    private let continuingPrefixBytes: [UInt8]
    /// The vocabulary by id ("" where an id has no token).
    let tokens: [String]
    /// Special tokens `tokenizer.json` adds, matched in the raw text (none from `vocab.txt`).
    var addedTokens: AddedTokens?
    /// Id of `[UNK]`.
    public let unknownID: Int32
    /// Id of `[CLS]`.
    public let clsID: Int32
    /// Id of `[SEP]`.
    public let sepID: Int32

    /// Number of entries in the vocabulary.
    public var vocabularySize: Int { vocabulary.count }

    /// Builds a tokenizer from a token → id map.
    public init(
        vocabulary: [String: Int32], normalizer: BertNormalizer = BertNormalizer(), maxLength: Int = 128,
        maxInputCharsPerWord: Int = 100, continuingSubwordPrefix: String = "##",
        unknownToken: String = "[UNK]", clsToken: String = "[CLS]", sepToken: String = "[SEP]", source: String = "vocabulary"
    ) throws(TokenizerError) {
        func id(_ token: String) throws(TokenizerError) -> Int32 {
            guard let id = vocabulary[token] else { throw .missingSpecialToken(file: source, token: token) }
            return id
        }
        self.vocabulary = Dictionary(vocabulary.map { (Array($0.key.utf8), $0.value) }, uniquingKeysWith: { first, _ in first })
        continuingPrefixBytes = Array(continuingSubwordPrefix.utf8)
        var tokens = [String](repeating: "", count: Int(vocabulary.values.max() ?? -1) + 1)
        for (token, id) in vocabulary where id >= 0 { tokens[Int(id)] = token }
        self.tokens = tokens
        self.normalizer = normalizer
        self.maxLength = maxLength
        self.maxInputCharsPerWord = maxInputCharsPerWord
        self.continuingSubwordPrefix = continuingSubwordPrefix
        unknownID = try id(unknownToken)
        clsID = try id(clsToken)
        sepID = try id(sepToken)
    }

    /// Loads the tokenizer of a model directory: `tokenizer.json` when present, else `vocab.txt`.
    public init(modelDirectory: String, maxLength: Int = 128) throws(TokenizerError) {
        let jsonPath = modelDirectory + "/tokenizer.json"
        let vocabPath = modelDirectory + "/vocab.txt"
        if FileManager.default.fileExists(atPath: jsonPath) {
            let file: TokenizerFile
            do {
                file = try JSONDecoder().decode(TokenizerFile.self, from: Data(contentsOf: URL(fileURLWithPath: jsonPath)))
            } catch {
                throw .invalidFile(file: jsonPath, reason: "\(error)")
            }
            guard file.model.type == "WordPiece" else {
                throw .invalidFile(file: jsonPath, reason: "model type '\(file.model.type)' is not WordPiece")
            }
            let normalizer = file.normalizer.map {
                BertNormalizer(
                    cleanText: $0.clean_text ?? true, handleChineseChars: $0.handle_chinese_chars ?? true,
                    stripAccents: $0.strip_accents, lowercase: $0.lowercase ?? true)
            } ?? BertNormalizer()
            try self.init(
                vocabulary: file.model.vocab, normalizer: normalizer,
                maxLength: min(maxLength, file.truncation?.max_length ?? maxLength),
                maxInputCharsPerWord: file.model.max_input_chars_per_word ?? 100,
                continuingSubwordPrefix: file.model.continuing_subword_prefix ?? "##",
                unknownToken: file.model.unk_token ?? "[UNK]", source: jsonPath)
            addedTokens = AddedTokens(root: try Tokenizer.readJSON(path: jsonPath))
        } else if FileManager.default.fileExists(atPath: vocabPath) {
            let text: String
            do {
                text = try String(contentsOfFile: vocabPath, encoding: .utf8)
            } catch {
                throw .invalidFile(file: vocabPath, reason: "\(error)")
            }
            var vocabulary: [String: Int32] = [:]
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            if lines.last == "" { lines.removeLast() }
            for (index, line) in lines.enumerated() {
                vocabulary[String(line.hasSuffix("\r") ? line.dropLast() : line)] = Int32(index)
            }
            try self.init(vocabulary: vocabulary, maxLength: maxLength, source: vocabPath)
        } else {
            throw .missingFiles(directory: modelDirectory)
        }
    }

    /// Tokenises `text` into `[CLS] pieces… [SEP]`, at most `maxLength` ids.
    ///
    /// Only what can be used is normalised and split: the text is taken in pieces cut at whitespace (which
    /// separates words, so the pieces tokenise as the whole would), and tokenising stops once `maxLength` ids are
    /// out. A megabyte of text costs what its first few hundred words cost.
    public func encode(_ text: String) -> Encoding {
        let (ids, truncated) = pieces(text, budget: maxLength - 2)
        return Encoding(ids: [clsID] + ids + [sepID], truncated: truncated)
    }

    /// A pair as BERT's template puts it: `[CLS] A [SEP] B [SEP]`, B and its `[SEP]` of token type 1, the longer
    /// text cut first to fit `maxLength`.
    public func encode(_ text: String, pair: String) -> Encoding {
        let budget = maxLength - 3
        var (a, cutA) = pieces(text, budget: budget), (b, cutB) = pieces(pair, budget: budget)
        let truncated = SpecialTokens.truncateLongestFirst(&a, &b, room: budget) || cutA || cutB
        return Encoding(
            ids: [clsID] + a + [sepID] + b + [sepID], truncated: truncated,
            typeIds: [Int32](repeating: 0, count: a.count + 2) + [Int32](repeating: 1, count: b.count + 1))
    }

    /// `text`'s sub-word ids without specials, at most `budget` of them, and whether it was cut.
    private func pieces(_ text: String, budget: Int) -> (ids: [Int32], truncated: Bool) {
        var ids: [Int32] = []
        for (part, special) in addedTokens?.split(text) ?? [(text, nil)] {
            if let special {
                if ids.count == budget { return (ids, true) }
                ids.append(special)
                continue
            }
            var rest = Substring(part)
            while !rest.isEmpty {
                let piece = Self.nextPiece(of: &rest)
                for word in Self.preTokenize(normalizer.normalize(String(piece))) {
                    for id in wordPieces(word) {
                        if ids.count == budget { return (ids, true) }
                        ids.append(id)
                    }
                }
            }
        }
        return (ids, false)
    }

    /// The next piece of `rest` (about 2,048 characters, cut after whitespace), removed from it. A run of more than
    /// 256 characters without whitespace is cut anyway: such a word is one `[UNK]` whole or in parts.
    static func nextPiece(of rest: inout Substring) -> Substring {
        var end = rest.index(rest.startIndex, offsetBy: 2048, limitedBy: rest.endIndex) ?? rest.endIndex
        var scanned = 0
        while end != rest.endIndex, !rest[end].isWhitespace, scanned < 256 {
            end = rest.index(after: end)
            scanned += 1
        }
        let piece = rest[..<end]
        rest = rest[end...]
        return piece
    }

    /// Splits normalised text on whitespace and isolates each punctuation character.
    static func preTokenize(_ text: String) -> [Substring.UnicodeScalarView] {
        var words: [Substring.UnicodeScalarView] = []
        let scalars = text.unicodeScalars
        var start = scalars.startIndex
        var index = start
        while index != scalars.endIndex {
            let scalar = scalars[index]
            let next = scalars.index(after: index)
            if BertNormalizer.isWhitespace(scalar) {
                if start != index { words.append(scalars[start..<index]) }
                start = next
            } else if isPunctuation(scalar) {
                if start != index { words.append(scalars[start..<index]) }
                words.append(scalars[index..<next])
                start = next
            }
            index = next
        }
        if start != scalars.endIndex { words.append(scalars[start...]) }
        return words
    }

    /// ASCII punctuation or any Unicode punctuation category.
    static func isPunctuation(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 33...47, 58...64, 91...96, 123...126: return true
        case 0..<128: return false
        default:
            switch scalar.properties.generalCategory {
            case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
                 .initialPunctuation, .finalPunctuation, .otherPunctuation:
                return true
            default:
                return false
            }
        }
    }

    /// Greedy longest-match-first WordPiece split of one word; `[UNK]` when it cannot be split.
    func wordPieces(_ word: Substring.UnicodeScalarView) -> [Int32] {
        wordPieceSpans(word).map(\.id)
    }

    /// The split of one word with each piece's scalars in it (`[UNK]` covers the whole word).
    func wordPieceSpans(_ word: Substring.UnicodeScalarView) -> [(id: Int32, span: Range<Int>)] {
        let scalars = Array(word)
        if scalars.count > maxInputCharsPerWord { return [(unknownID, 0..<scalars.count)] }
        // The word's UTF-8 bytes, and where each scalar's start.
        var bytes: [UInt8] = [], starts: [Int] = []
        for scalar in scalars {
            starts.append(bytes.count)
            bytes += UTF8.encode(scalar)!
        }
        starts.append(bytes.count)
        var pieces: [(id: Int32, span: Range<Int>)] = []
        var start = 0
        while start < scalars.count {
            var end = scalars.count
            var found: Int32?
            while start < end {
                let candidate = (start > 0 ? continuingPrefixBytes : []) + bytes[starts[start]..<starts[end]]
                if let id = vocabulary[candidate] {
                    found = id
                    break
                }
                end -= 1
            }
            guard let id = found else { return [(unknownID, 0..<scalars.count)] }
            pieces.append((id, start..<end))
            start = end
        }
        return pieces
    }
}

/// The parts of Hugging Face's `tokenizer.json` a WordPiece tokenizer needs.
private struct TokenizerFile: Decodable {
    struct Model: Decodable {
        let type: String
        let vocab: [String: Int32]
        let unk_token: String?
        let continuing_subword_prefix: String?
        let max_input_chars_per_word: Int?
    }
    struct Normalizer: Decodable {
        let clean_text: Bool?
        let handle_chinese_chars: Bool?
        let strip_accents: Bool?
        let lowercase: Bool?
    }
    struct Truncation: Decodable {
        let max_length: Int?
    }
    let model: Model
    let normalizer: Normalizer?
    let truncation: Truncation?
}
