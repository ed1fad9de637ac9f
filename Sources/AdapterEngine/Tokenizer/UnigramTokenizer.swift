import Foundation

/// A SentencePiece-style Unigram tokenizer from Hugging Face's `tokenizer.json`, as XLM-RoBERTa uses it: the text
/// split around its special tokens, cut at whitespace, each word prefixed with `▁` (Metaspace, `prepend_scheme`
/// "always"), segmented into the pieces of the highest total score (Viterbi over the vocabulary's log-probabilities;
/// a character no piece covers is `unk`, scored below every piece, and neighbouring unknowns are fused into one), and
/// wrapped by the post-processor. Other normalisers, pre-tokenisers or options are refused by name.
public struct UnigramTokenizer: Sendable {
    /// Each piece's id and score, by its UTF-8 bytes: a String key would match canonically equivalent pieces (a
    /// decomposed `e` + U+0301 finding `é`), where tokenizers compares exact characters.
    let pieces: [ArraySlice<UInt8>: (id: Int32, score: Double)]
    /// Pieces by id (for decoding).
    let tokens: [String]
    /// Longest piece, in Unicode scalars.
    let longestPiece: Int
    let unknownID: Int32
    /// What an unknown character scores: below every piece (tokenizers' `min_score - 10`).
    let unknownScore: Double
    let replacement: Unicode.Scalar
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
        var pieces: [ArraySlice<UInt8>: (Int32, Double)] = [:]
        var longest = 1, lowest = Double.infinity
        for (index, entry) in vocab.enumerated() {
            guard case .array(let pair) = entry, pair.count == 2, case .string(let piece) = pair[0], case .number(let score) = pair[1] else {
                throw invalid("vocab entry \(index) is not [piece, score]")
            }
            if pieces[Array(piece.utf8)[...]] == nil { pieces[Array(piece.utf8)[...]] = (Int32(index), score) }
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
        self.replacement = replacement.unicodeScalars.first!
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
        var ids: [Int32] = []
        for word in words(piece) {
            for segment in word.segments { ids += self.segment(word.marked[segment]).map(\.id) }
        }
        return ids
    }

    /// Metaspace over text between special tokens: each word between whitespace (Unicode's White_Space, as
    /// tokenizers' WhitespaceSplit), the scalar offset where it starts, its scalars with the marker in front, and
    /// their cuts before every marker inside it.
    func words(_ piece: String) -> [(start: Int, marked: [Unicode.Scalar], segments: [Range<Int>])] {
        let scalars = Array(piece.unicodeScalars)
        var result: [(start: Int, marked: [Unicode.Scalar], segments: [Range<Int>])] = []
        var index = 0
        while index < scalars.count {
            guard !Self.isWhitespace(scalars[index]) else {
                index += 1
                continue
            }
            var end = index + 1
            while end < scalars.count, !Self.isWhitespace(scalars[end]) { end += 1 }
            let marked = [replacement] + scalars[index..<end]
            var segments: [Range<Int>] = []
            var start = 0
            for cut in 1..<marked.count where marked[cut] == replacement {
                segments.append(start..<cut)
                start = cut
            }
            segments.append(start..<marked.count)
            result.append((index, marked, segments))
            index = end
        }
        return result
    }

    private static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 128 ? scalar == " " || (0x09...0x0D).contains(scalar.value) : scalar.properties.isWhitespace
    }

    /// The ids of `text`, special tokens included, cut to `maxLength`.
    public func encode(_ text: String) -> [Int32] { encoding(text).ids }

    /// The best-scoring segmentation of one word: each piece's id and length in Unicode scalars.
    func segment(_ scalars: ArraySlice<Unicode.Scalar>) -> [(id: Int32, length: Int)] {
        let count = scalars.count
        // The word's UTF-8 bytes, and where each scalar starts in them: a candidate piece is a slice, not a new array.
        var bytes: [UInt8] = [], offsets: [Int] = []
        bytes.reserveCapacity(count * 2)
        for scalar in scalars {
            offsets.append(bytes.count)
            bytes += UTF8.encode(scalar)!
        }
        offsets.append(bytes.count)
        // best[i]: the highest score of a segmentation of the first i scalars, the piece ending there and its start.
        var best = [(score: Double, start: Int, id: Int32)?](repeating: nil, count: count + 1)
        best[0] = (0, 0, -1)
        for start in 0..<count {
            guard let here = best[start]?.score else { continue }
            var coveredOne = false
            for end in (start + 1)...min(count, start + longestPiece) {
                guard let (id, score) = pieces[bytes[offsets[start]..<offsets[end]]] else { continue }
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
