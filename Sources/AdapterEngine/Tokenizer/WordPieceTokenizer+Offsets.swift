/// Character offsets and token strings for WordPiece, as Hugging Face's fast tokenizers give them: what token
/// classification needs to put words back into the text.
extension WordPieceTokenizer {
    /// `text`'s ids (as `encode` gives them) with each id's span in `text`, in Unicode scalars (Python's string
    /// indices); nil for special tokens. A piece's span runs from the first to the last input character it came
    /// from, through normalisation (accents, case, CJK spacing).
    public func encodeWithOffsets(_ text: String) -> (ids: [Int32], offsets: [Range<Int>?]) {
        var ids: [Int32] = [], offsets: [Range<Int>?] = []
        var start = 0
        parts: for (part, special) in addedTokens?.split(text) ?? [(text, nil)] {
            defer { start += part.unicodeScalars.count }
            if let special {
                if ids.count == maxLength - 2 { break parts }
                ids.append(special)
                offsets.append(nil)
                continue
            }
            let normalized = normalizer.normalizeWithOrigins(Array(part.unicodeScalars))
            let string = String(String.UnicodeScalarView(normalized.map(\.scalar)))
            let scalars = string.unicodeScalars
            // Words come in order: each one's position is counted on from the one before.
            var position = 0, cursor = scalars.startIndex
            for word in Self.preTokenize(string) {
                position += scalars.distance(from: cursor, to: word.startIndex)
                cursor = word.startIndex
                for (id, piece) in wordPieceSpans(word) {
                    if ids.count == maxLength - 2 { break parts }
                    ids.append(id)
                    offsets.append((start + normalized[position + piece.lowerBound].origin)..<(start + normalized[position + piece.upperBound - 1].origin + 1))
                }
            }
        }
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
