/// Character offsets and token strings for WordPiece, as Hugging Face's fast tokenizers give them: what token
/// classification needs to put words back into the text.
extension WordPieceTokenizer {
    /// `text`'s ids (as `encode` gives them) with each id's span in `text`, in Unicode scalars (Python's string
    /// indices); nil for `[CLS]` and `[SEP]`. A piece's span runs from the first to the last input character it came
    /// from, through normalisation (accents, case, CJK spacing).
    public func encodeWithOffsets(_ text: String) -> (ids: [Int32], offsets: [Range<Int>?]) {
        let normalized = normalizer.normalizeWithOrigins(Array(text.unicodeScalars))
        let budget = maxLength - 2
        var ids: [Int32] = [], offsets: [Range<Int>?] = []
        var start = 0
        func word(_ range: Range<Int>) -> Bool {
            let scalars = String.UnicodeScalarView(normalized[range].map(\.scalar))
            for (id, piece) in wordPieceSpans(scalars[...]) {
                if ids.count == budget { return false }
                ids.append(id)
                offsets.append(normalized[range.lowerBound + piece.lowerBound].origin..<(normalized[range.lowerBound + piece.upperBound - 1].origin + 1))
            }
            return true
        }
        var index = 0
        scan: while index < normalized.count {
            let scalar = normalized[index].scalar
            if BertNormalizer.isWhitespace(scalar) {
                if start < index, !word(start..<index) { break scan }
                start = index + 1
            } else if Self.isPunctuation(scalar) {
                if start < index, !word(start..<index) { break scan }
                if !word(index..<(index + 1)) { break scan }
                start = index + 1
            }
            index += 1
        }
        if index == normalized.count, start < normalized.count { _ = word(start..<normalized.count) }
        return ([clsID] + ids + [sepID], [nil] + offsets + [nil])
    }

    /// The vocabulary's string for `id`.
    public func token(for id: Int32) -> String? {
        id >= 0 && Int(id) < tokens.count ? tokens[Int(id)] : nil
    }

    /// Tokens joined back into text as Hugging Face's WordPiece decoder does: continuations glued on, others after a
    /// space, each token then cleaned up (a space before punctuation and contractions dropped).
    public func decode(tokens pieces: [String]) -> String {
        var text = ""
        for (index, piece) in pieces.enumerated() {
            var token = piece
            if index > 0 {
                token = piece.hasPrefix(continuingSubwordPrefix) ? String(piece.dropFirst(continuingSubwordPrefix.count)) : " " + piece
            }
            for (from, to) in [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
                               (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")] {
                token = token.replacingOccurrences(of: from, with: to)
            }
            text += token
        }
        return text
    }
}
