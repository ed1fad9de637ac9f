/// Character offsets and decoding for Unigram with Metaspace, as Hugging Face's fast tokenizers give them: what
/// token classification needs to put words back into the text.
extension UnigramTokenizer {
    /// `text`'s ids (as `encode` gives them) with each id's span in `text`, in Unicode scalars (Python's string
    /// indices); nil for special tokens. The marker Metaspace puts in front of a word stands for the word's first
    /// character (a lone `▁` piece shares that character's span).
    public func encodeWithOffsets(_ text: String) -> (ids: [Int32], offsets: [Range<Int>?]) {
        specialTokens.encodeWithOffsets(text, limit: maxLength) { piece, start in
            var result: [(id: Int32, span: Range<Int>)] = []
            for (wordStart, marked, segments) in words(piece) {
                for segment in segments {
                    var position = segment.lowerBound
                    for (id, length) in self.segment(marked[segment]) {
                        // Marked scalar k is the word's scalar k − 1; the marker (k = 0) its first.
                        let first = max(position - 1, 0), last = max(position + length - 2, 0)
                        result.append((id, (start + wordStart + first)..<(start + wordStart + last + 1)))
                        position += length
                    }
                }
            }
            return result
        }
    }

    /// The vocabulary's piece for `id`.
    public func token(for id: Int32) -> String? {
        id >= 0 && Int(id) < tokens.count ? tokens[Int(id)] : nil
    }

    /// Pieces joined back into text as the Metaspace decoder does: markers become spaces, and the first piece's
    /// marker (the one prepended to every text) is dropped.
    public func decode(tokens pieces: [String]) -> String {
        var text = String(String.UnicodeScalarView(pieces.joined().unicodeScalars.map { $0 == replacement ? " " : $0 }))
        if text.hasPrefix(" ") { text.removeFirst() }
        return text
    }
}
