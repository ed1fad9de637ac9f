import Foundation

/// A byte-level BPE tokenizer from Hugging Face's `tokenizer.json` (GPT-2's scheme, as RoBERTa and ModernBERT use
/// it): the text split around its special tokens, normalised (none or NFC), pre-tokenised by the ByteLevel regex
/// (`ByteLevelPreTokenizer`) into words whose bytes map to printable characters, each word merged by the ranked
/// merges (on ids, each byte's character's id to start with), and wrapped by the
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
    /// The id of each byte's character (−1 when the vocabulary lacks it: the byte is dropped, as tokenizers drops a
    /// character without an unknown token).
    let byteIDs: [Int32]
    /// Each merge by its pair of ids (`left << 32 | right`): its rank (a lower rank merges first) and the merged id.
    let merges: [UInt64: (rank: Int32, id: Int32)]
    /// Special tokens in the text, and the ids around a sequence.
    let specialTokens: SpecialTokens
    let normalizesNFC: Bool
    /// A word that is in the vocabulary is taken whole before any merge (`ignore_merges`).
    let ignoreMerges: Bool
    /// Longest sequence, special tokens included.
    public let maxLength: Int

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
        guard case .array(let mergeList) = model["merges"] else { throw invalid("model.merges is missing") }
        var merges: [UInt64: (rank: Int32, id: Int32)] = [:]
        for (rank, merge) in mergeList.enumerated() {
            let left: String, right: String
            switch merge {
            case .string(let pair) where pair.split(separator: " ").count == 2:
                let parts = pair.split(separator: " ")
                (left, right) = (String(parts[0]), String(parts[1]))
            case .array(let parts) where parts.count == 2:
                guard case .string(let first) = parts[0], case .string(let second) = parts[1] else { throw invalid("merge \(rank) is not two strings") }
                (left, right) = (first, second)
            default: throw invalid("merge \(rank) is not a pair")
            }
            guard let a = vocabulary[left], let b = vocabulary[right] else { continue }
            guard let merged = vocabulary[left + right] else { throw invalid("merge \(rank) makes '\(left + right)', which is not in the vocabulary") }
            let key = Self.key(a, b)
            if merges[key] == nil { merges[key] = (Int32(rank), merged) }
        }
        self.vocabulary = vocabulary
        self.merges = merges
        byteIDs = Self.byteCharacters.map { vocabulary[$0] ?? -1 }
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
        specialTokens.encode(text, limit: maxLength, encodePiece: ids)
    }

    /// A pair's ids as the post-processor's pair template lays them out; nil without one.
    public func encoding(_ text: String, pair: String) -> Encoding? {
        specialTokens.encode(text, pair: pair, limit: maxLength, encodePiece: ids)
    }

    /// The ids of text between special tokens.
    private func ids(_ piece: String) -> [Int32] {
        let scalars = normalized(piece)
        let bytes = Array(String(String.UnicodeScalarView(scalars)).utf8)
        var ids: [Int32] = []
        var byte = 0
        for word in ByteLevelPreTokenizer.words(scalars) {
            let width = scalars[word].reduce(0) { $0 + UTF8.width($1) }
            ids += tokens(ofWord: bytes[byte..<(byte + width)]).ids
            byte += width
        }
        return ids
    }

    /// `piece`'s scalars after the normaliser (NFC or none; ASCII is its own NFC).
    func normalized(_ piece: String) -> [Unicode.Scalar] {
        guard normalizesNFC, piece.utf8.contains(where: { $0 >= 0x80 }) else { return Array(piece.unicodeScalars) }
        return Array(piece.precomposedStringWithCanonicalMapping.unicodeScalars)
    }

    static func key(_ left: Int32, _ right: Int32) -> UInt64 { UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right)) }

    /// The ids of `text`, special tokens included, cut to `maxLength` (the last special tokens kept).
    public func encode(_ text: String) -> [Int32] { encoding(text).ids }

    /// One pre-tokenised word's tokens: its UTF-8 bytes as their characters' ids, merged by rank (every occurrence of
    /// the best pair, left to right, as GPT-2 merges), with the bytes of the word each token covers.
    func tokens(ofWord word: ArraySlice<UInt8>) -> (ids: [Int32], bytes: [Range<Int>]) {
        let base = word.startIndex
        if ignoreMerges, let id = vocabulary[word.map { Self.byteCharacters[Int($0)] }.joined()] { return ([id], [0..<word.count]) }
        var ids: [Int32] = [], lower: [Int] = [], upper: [Int] = []
        ids.reserveCapacity(word.count)
        for index in word.indices where byteIDs[Int(word[index])] >= 0 {
            ids.append(byteIDs[Int(word[index])])
            lower.append(index - base)
            upper.append(index - base + 1)
        }
        while ids.count > 1 {
            var best: (rank: Int32, index: Int, id: Int32)?
            for index in 0..<(ids.count - 1) {
                if let merge = merges[Self.key(ids[index], ids[index + 1])], merge.rank < (best?.rank ?? .max) {
                    best = (merge.rank, index, merge.id)
                }
            }
            guard let best else { break }
            let left = ids[best.index], right = ids[best.index + 1]
            var write = best.index, read = best.index
            while read < ids.count {
                if read + 1 < ids.count, ids[read] == left, ids[read + 1] == right {
                    (ids[write], lower[write], upper[write]) = (best.id, lower[read], upper[read + 1])
                    read += 2
                } else {
                    (ids[write], lower[write], upper[write]) = (ids[read], lower[read], upper[read])
                    read += 1
                }
                write += 1
            }
            ids.removeLast(ids.count - write)
            lower.removeLast(lower.count - write)
            upper.removeLast(upper.count - write)
        }
        return (ids, zip(lower, upper).map { $0..<$1 })
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
