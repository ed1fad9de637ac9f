import Foundation

/// A byte-level BPE tokenizer from Hugging Face's `tokenizer.json` (GPT-2's scheme, as RoBERTa and ModernBERT use
/// it): the text split around its special tokens, normalised (none or NFC), pre-tokenised by the ByteLevel regex
/// into words whose bytes map to printable characters, each word merged by the ranked merges, and wrapped by the
/// post-processor (`RobertaProcessing` or a `TemplateProcessing` single template). Any other component is refused
/// by name when the file is read, so a checkpoint never runs with different ids than its own tokenizer gives.
public struct BPETokenizer: Sendable {
    /// Token ids by token.
    let vocabulary: [String: Int32]
    /// Tokens by id (for decoding).
    let tokens: [String]
    /// Whether character offsets leave out a token's leading and trailing spaces (`RobertaProcessing`'s
    /// `trim_offsets`), and whether the first token's one leading space is kept (its `add_prefix_space`).
    let trimsOffsets: Bool
    let addsPrefixSpace: Bool
    /// Merge ranks by pair (`left + " " + right`); a lower rank merges first.
    let ranks: [String: Int]
    /// Special tokens in the text, and the ids around a sequence.
    let specialTokens: SpecialTokens
    let normalizesNFC: Bool
    /// A word that is in the vocabulary is taken whole before any merge (`ignore_merges`).
    let ignoreMerges: Bool
    /// Longest sequence, special tokens included.
    public let maxLength: Int

    /// GPT-2's pre-tokenisation: contractions, letters, numbers, other symbols (each with one leading space), and
    /// runs of whitespace.
    /// (A Regex is not Sendable, so each call makes its own.)
    static var pattern: some RegexComponent {
        #/'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/#.matchingSemantics(.unicodeScalar)
    }

    /// Reads `tokenizer.json` at `path`.
    public init(path: String, maxLength: Int = 128) throws(TokenizerError) {
        try self.init(root: try Tokenizer.readJSON(path: path), path: path, maxLength: maxLength)
    }

    /// From the parsed `tokenizer.json` at `path`.
    init(root: JSONValue, path: String, maxLength: Int) throws(TokenizerError) {
        func invalid(_ reason: String) -> TokenizerError { .invalidFile(file: path, reason: reason) }
        guard let model = root["model"], case .string("BPE") = model["type"] else { throw invalid("model type is not BPE") }
        for (field, value) in [("continuing_subword_prefix", model["continuing_subword_prefix"]), ("end_of_word_suffix", model["end_of_word_suffix"])] {
            if let value, !value.isEmptyOrDefault { throw invalid("BPE '\(field)' is set; byte-level BPE without it is implemented") }
        }
        if case .bool(true) = model["byte_fallback"] { throw invalid("BPE 'byte_fallback' is set (SentencePiece-style BPE is not implemented)") }
        ignoreMerges = model["ignore_merges"] == .bool(true)
        guard case .object(let vocab) = model["vocab"] else { throw invalid("model.vocab is missing") }
        var vocabulary: [String: Int32] = [:]
        for (token, value) in vocab {
            guard case .number(let id) = value, let exact = Int32(exactly: id), exact >= 0 else { throw invalid("vocab id of '\(token)' is not an id") }
            vocabulary[token] = exact
        }
        guard case .array(let merges) = model["merges"] else { throw invalid("model.merges is missing") }
        var ranks: [String: Int] = [:]
        for (rank, merge) in merges.enumerated() {
            switch merge {
            case .string(let pair) where pair.split(separator: " ").count == 2: ranks[pair] = ranks[pair] ?? rank
            case .array(let parts) where parts.count == 2:
                guard case .string(let left) = parts[0], case .string(let right) = parts[1] else { throw invalid("merge \(rank) is not two strings") }
                ranks[left + " " + right] = ranks[left + " " + right] ?? rank
            default: throw invalid("merge \(rank) is not a pair")
            }
        }
        self.vocabulary = vocabulary
        self.ranks = ranks
        var tokens = [String](repeating: "", count: Int(vocabulary.values.max() ?? -1) + 1)
        for (token, id) in vocabulary { tokens[Int(id)] = token }
        if case .array(let added) = root["added_tokens"] ?? .array([]) {
            for token in added {
                guard case .string(let content) = token["content"], case .number(let id) = token["id"], let exact = Int(exactly: id), exact >= 0 else { continue }
                if exact >= tokens.count { tokens += [String](repeating: "", count: exact + 1 - tokens.count) }
                tokens[exact] = content
            }
        }
        self.tokens = tokens
        let post = root["post_processor"] ?? .null
        trimsOffsets = post["type"] == .string("RobertaProcessing") && post["trim_offsets"] != .bool(false)
        addsPrefixSpace = post["add_prefix_space"] != .bool(false)

        switch root["normalizer"] ?? .null {
        case .null: normalizesNFC = false
        case let normalizer where normalizer["type"] == .string("NFC"): normalizesNFC = true
        case let normalizer: throw invalid("normalizer \(normalizer["type"]?.summary ?? "?") is not implemented (none or NFC)")
        }
        guard let pre = root["pre_tokenizer"], pre["type"] == .string("ByteLevel") else {
            throw invalid("pre_tokenizer \(root["pre_tokenizer"]?["type"]?.summary ?? "none") is not implemented (ByteLevel)")
        }
        if pre["add_prefix_space"] == .bool(true) { throw invalid("ByteLevel add_prefix_space is not implemented") }
        if pre["use_regex"] == .bool(false) { throw invalid("ByteLevel without its regex is not implemented") }

        specialTokens = try SpecialTokens(root: root, path: path)
        self.maxLength = maxLength
    }

    /// The ids of `text` and whether they were cut to `maxLength`.
    public func encoding(_ text: String) -> Encoding {
        specialTokens.encode(text, limit: maxLength) { piece in
            let normalized = normalizesNFC ? piece.precomposedStringWithCanonicalMapping : piece
            return normalized.matches(of: Self.pattern).flatMap { word(normalized[$0.range]) }
        }
    }

    /// A pair's ids as the post-processor's pair template lays them out; nil without one.
    public func encoding(_ text: String, pair: String) -> Encoding? {
        specialTokens.encode(text, pair: pair, limit: maxLength) { piece in
            let normalized = normalizesNFC ? piece.precomposedStringWithCanonicalMapping : piece
            return normalized.matches(of: Self.pattern).flatMap { word(normalized[$0.range]) }
        }
    }

    /// The ids of `text`, special tokens included, cut to `maxLength` (the last special tokens kept).
    public func encode(_ text: String) -> [Int32] { encoding(text).ids }

    /// One pre-tokenised word: its UTF-8 bytes as GPT-2's printable characters, merged by rank, as ids.
    private func word(_ text: Substring) -> [Int32] {
        // Byte-level vocabularies hold every byte's character, so nothing is unknown.
        symbols(text).compactMap { vocabulary[$0] }
    }

    /// One pre-tokenised word's symbols after the merges, each a token of the vocabulary (one character per byte).
    func symbols(_ text: Substring) -> [String] {
        let mapped = text.utf8.map { Self.byteCharacters[Int($0)] }
        if ignoreMerges, case let whole = mapped.joined(), vocabulary[whole] != nil { return [whole] }
        var symbols = mapped
        while symbols.count > 1 {
            var best: (rank: Int, index: Int)?
            for index in 0..<(symbols.count - 1) {
                if let rank = ranks[symbols[index] + " " + symbols[index + 1]], rank < (best?.rank ?? Int.max) { best = (rank, index) }
            }
            guard let best else { break }
            // Every occurrence of the best pair, left to right, as GPT-2 merges.
            let left = symbols[best.index], right = symbols[best.index + 1]
            var merged: [String] = []
            var index = 0
            while index < symbols.count {
                if index + 1 < symbols.count, symbols[index] == left, symbols[index + 1] == right {
                    merged.append(left + right)
                    index += 2
                } else {
                    merged.append(symbols[index])
                    index += 1
                }
            }
            symbols = merged
        }
        return symbols
    }

    /// GPT-2's `bytes_to_unicode`: printable bytes stand for themselves, the others for 256 + n in order.
    static let byteCharacters: [String] = {
        var table = [String](repeating: "", count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            if (33...126).contains(byte) || (161...172).contains(byte) || (174...255).contains(byte) {
                table[byte] = String(UnicodeScalar(UInt8(byte)))
            } else {
                table[byte] = String(UnicodeScalar(next)!)
                next += 1
            }
        }
        return table
    }()
}
