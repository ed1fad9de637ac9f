import Foundation

/// A SentencePiece-style Unigram tokenizer from Hugging Face's `tokenizer.json`, as XLM-RoBERTa uses it: the text
/// split around its special tokens, cut at whitespace, each word prefixed with `▁` (Metaspace, `prepend_scheme`
/// "always"), segmented into the pieces of the highest total score (Viterbi over the vocabulary's log-probabilities;
/// a character no piece covers is `unk`, scored below every piece, and neighbouring unknowns are fused into one), and
/// wrapped by the post-processor. Other normalisers, pre-tokenisers or options are refused by name.
public struct UnigramTokenizer: Sendable {
    /// Each piece's id and score, by its UTF-8 bytes: a String key would match canonically equivalent pieces (a
    /// decomposed `e` + U+0301 finding `é`), where tokenizers compares exact characters.
    let pieces: [[UInt8]: (id: Int32, score: Double)]
    /// Pieces by id (for decoding).
    let tokens: [String]
    /// Longest piece, in Unicode scalars.
    let longestPiece: Int
    let unknownID: Int32
    /// What an unknown character scores: below every piece (tokenizers' `min_score - 10`).
    let unknownScore: Double
    let replacement: Character
    let specialTokens: SpecialTokens
    /// Longest sequence, special tokens included.
    public let maxLength: Int

    /// Reads `tokenizer.json` at `path`.
    public init(path: String, maxLength: Int = 128) throws(TokenizerError) {
        try self.init(root: try Tokenizer.readJSON(path: path), path: path, maxLength: maxLength)
    }

    /// From the parsed `tokenizer.json` at `path`.
    init(root: JSONValue, path: String, maxLength: Int) throws(TokenizerError) {
        func invalid(_ reason: String) -> TokenizerError { .invalidFile(file: path, reason: reason) }
        guard let model = root["model"], model["type"] == .string("Unigram") else { throw invalid("model type is not Unigram") }
        if model["byte_fallback"] == .bool(true) { throw invalid("Unigram 'byte_fallback' is not implemented") }
        guard case .array(let vocab) = model["vocab"] else { throw invalid("model.vocab is missing") }
        var pieces: [[UInt8]: (Int32, Double)] = [:]
        var longest = 1, lowest = Double.infinity
        for (index, entry) in vocab.enumerated() {
            guard case .array(let pair) = entry, pair.count == 2, case .string(let piece) = pair[0], case .number(let score) = pair[1] else {
                throw invalid("vocab entry \(index) is not [piece, score]")
            }
            if pieces[Array(piece.utf8)] == nil { pieces[Array(piece.utf8)] = (Int32(index), score) }
            longest = max(longest, piece.unicodeScalars.count)
            lowest = min(lowest, score)
        }
        guard case .number(let unk) = model["unk_id"], let unknownID = Int32(exactly: unk), Int(unknownID) < vocab.count else {
            throw invalid("Unigram needs an unk_id")
        }
        self.pieces = pieces
        tokens = vocab.map { entry in
            if case .array(let pair) = entry, case .string(let piece) = pair[0] { return piece }
            return ""
        }
        longestPiece = longest
        self.unknownID = unknownID
        unknownScore = lowest - 10

        if let normalizer = root["normalizer"], normalizer != .null {
            throw invalid("normalizer \(normalizer["type"]?.summary ?? "?") is not implemented for Unigram (none)")
        }
        // WhitespaceSplit then Metaspace (replacement, prepend_scheme "always", split), as XLM-RoBERTa's file has.
        guard let pre = root["pre_tokenizer"], pre["type"] == .string("Sequence"), case .array(let steps) = pre["pretokenizers"],
              steps.count == 2, steps[0]["type"] == .string("WhitespaceSplit"), steps[1]["type"] == .string("Metaspace"),
              case .string(let replacement) = steps[1]["replacement"], replacement.count == 1 else {
            throw invalid("pre_tokenizer \(root["pre_tokenizer"]?.summary ?? "none") is not implemented (WhitespaceSplit then Metaspace)")
        }
        if let scheme = steps[1]["prepend_scheme"], scheme != .string("always") {
            throw invalid("Metaspace prepend_scheme \(scheme.summary) is not implemented (always)")
        }
        self.replacement = replacement.first!
        specialTokens = try SpecialTokens(root: root, path: path)
        self.maxLength = maxLength
    }

    /// The ids of `text` and whether they were cut to `maxLength`.
    public func encoding(_ text: String) -> Encoding {
        specialTokens.encode(text, limit: maxLength, encodePiece: pieces)
    }

    /// A pair's ids as the post-processor's pair template lays them out; nil without one.
    public func encoding(_ text: String, pair: String) -> Encoding? {
        specialTokens.encode(text, pair: pair, limit: maxLength, encodePiece: pieces)
    }

    /// The ids of text between special tokens.
    private func pieces(_ piece: String) -> [Int32] {
        words(piece).flatMap { $0.segments.flatMap { segment($0.text).map(\.id) } }
    }

    /// Metaspace over text between special tokens: each whitespace-separated word (and the scalar offset where it
    /// starts) with its marker in front, cut before every marker inside it (each cut with its scalar offset in the
    /// marked word).
    func words(_ piece: String) -> [(start: Int, segments: [(text: Substring, start: Int)])] {
        var result: [(start: Int, segments: [(text: Substring, start: Int)])] = []
        var position = 0, cursor = piece.startIndex
        for word in piece.split(whereSeparator: { $0.isWhitespace }) {
            position += piece.unicodeScalars.distance(from: cursor, to: word.startIndex)
            cursor = word.startIndex
            let marked = String(replacement) + word.map { $0 == " " ? replacement : $0 }
            var segments: [(text: Substring, start: Int)] = []
            var start = marked.startIndex, offset = 0
            for index in marked.indices.dropFirst() where marked[index] == replacement {
                segments.append((marked[start..<index], offset))
                offset += marked.unicodeScalars.distance(from: start, to: index)
                start = index
            }
            segments.append((marked[start...], offset))
            result.append((position, segments))
        }
        return result
    }

    /// The ids of `text`, special tokens included, cut to `maxLength`.
    public func encode(_ text: String) -> [Int32] { encoding(text).ids }

    /// The best-scoring segmentation of one word: each piece's id and length in Unicode scalars.
    func segment(_ word: Substring) -> [(id: Int32, length: Int)] {
        let scalars = Array(word.unicodeScalars)
        let count = scalars.count
        // best[i]: the highest score of a segmentation of the first i scalars, the piece ending there and its start.
        var best = [(score: Double, start: Int, id: Int32)?](repeating: nil, count: count + 1)
        best[0] = (0, 0, -1)
        for start in 0..<count {
            guard let here = best[start]?.score else { continue }
            var coveredOne = false
            var piece: [UInt8] = []
            for end in (start + 1)...min(count, start + longestPiece) {
                piece += UTF8.encode(scalars[end - 1])!
                guard let (id, score) = pieces[piece] else { continue }
                if end == start + 1 { coveredOne = true }
                let candidate = here + score
                if best[end] == nil || candidate > best[end]!.score { best[end] = (candidate, start, id) }
            }
            if !coveredOne {
                let candidate = here + unknownScore
                if best[start + 1] == nil || candidate > best[start + 1]!.score { best[start + 1] = (candidate, start, unknownID) }
            }
        }
        var pieces: [(id: Int32, length: Int)] = []
        var end = count
        while end > 0, let step = best[end] {
            // Neighbouring unknowns become one (fuse_unk).
            if step.id == unknownID, pieces.last?.id == unknownID {
                pieces[pieces.count - 1].length += end - step.start
            } else {
                pieces.append((step.id, end - step.start))
            }
            end = step.start
        }
        return pieces.reversed()
    }
}
