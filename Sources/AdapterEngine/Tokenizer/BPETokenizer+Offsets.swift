import Foundation

/// Character offsets and decoding for byte-level BPE, as Hugging Face's fast tokenizers give them: what token
/// classification needs to put words back into the text.
extension BPETokenizer {
    /// `text`'s ids (as `encode` gives them) with each id's span in `text`, in Unicode scalars (Python's string
    /// indices); nil for special tokens. A token's span covers every character one of its bytes came from (so the
    /// pieces of one emoji share its span), through NFC; with `trim_offsets`, leading and trailing spaces are left out.
    public func encodeWithOffsets(_ text: String) -> (ids: [Int32], offsets: [Range<Int>?]) {
        specialTokens.encodeWithOffsets(text, limit: maxLength) { piece, start in
            spans(piece, start: start)
        }
    }

    /// The tokens of one piece between special tokens, with their spans counted from `start`.
    private func spans(_ piece: String, start: Int) -> [(id: Int32, span: Range<Int>)] {
        let original = Array(piece.unicodeScalars)
        let (scalars, origins) = normalizesNFC ? Self.nfcWithOrigins(original) : (original, Array(original.indices))
        // The scalar each UTF-8 byte belongs to.
        var bytes: [UInt8] = [], scalarOfByte: [Int] = []
        for (index, scalar) in scalars.enumerated() {
            bytes += UTF8.encode(scalar)!
            scalarOfByte += repeatElement(index, count: UTF8.width(scalar))
        }
        var result: [(id: Int32, span: Range<Int>)] = []
        var byte = 0
        for word in ByteLevelPreTokenizer.words(scalars) {
            let width = scalars[word].reduce(0) { $0 + UTF8.width($1) }
            let (ids, ranges) = tokens(ofWord: bytes[byte..<(byte + width)])
            for (id, range) in zip(ids, ranges) {
                let first = origins[scalarOfByte[byte + range.lowerBound]], last = origins[scalarOfByte[byte + range.upperBound - 1]]
                var span = (start + first)..<(start + last + 1)
                if trimsOffsets {
                    let token = bytes[(byte + range.lowerBound)..<(byte + range.upperBound)]
                    span = trimmed(span, token: token, first: result.isEmpty)
                }
                result.append((id, span))
            }
            byte += width
        }
        return result
    }

    /// `RobertaProcessing`'s `trim_offsets`: a span without the spaces (`Ġ`, byte 0x20: no other byte's character is
    /// whitespace) its token starts or ends with.
    private func trimmed(_ span: Range<Int>, token: ArraySlice<UInt8>, first: Bool) -> Range<Int> {
        var leading = token.prefix(while: { $0 == 0x20 }).count
        let trailing = token.reversed().prefix(while: { $0 == 0x20 }).count
        var (lower, upper) = (span.lowerBound, span.upperBound)
        if leading > 0 {
            // The first token's one space is the one add_prefix_space put there.
            if (first || lower == 0), addsPrefixSpace, leading == 1 { leading = 0 }
            lower = min(lower + leading, upper)
        }
        if trailing > 0, upper >= trailing { upper = max(upper - trailing, lower) }
        return lower..<upper
    }

    /// NFC of `scalars`, each output scalar with the input scalar it stands for: a character composed from several
    /// stands for the first of them, as tokenizers' alignments put it (the marks it absorbed are dropped).
    static func nfcWithOrigins(_ scalars: [Unicode.Scalar]) -> ([Unicode.Scalar], [Int]) {
        var output: [Unicode.Scalar] = [], origins: [Int] = []
        var start = 0
        while start < scalars.count {
            // A starter and the combining marks after it compose among themselves.
            var end = start + 1
            while end < scalars.count, scalars[end].properties.canonicalCombiningClass != .notReordered { end += 1 }
            let run = String(String.UnicodeScalarView(scalars[start..<end])).precomposedStringWithCanonicalMapping
            for (index, scalar) in run.unicodeScalars.enumerated() {
                output.append(scalar)
                origins.append(min(start + index, end - 1))
            }
            start = end
        }
        return (output, origins)
    }

    /// The vocabulary's string for `id`.
    public func token(for id: Int32) -> String? {
        id >= 0 && Int(id) < tokens.count ? tokens[Int(id)] : nil
    }

    /// Tokens joined back into text as the ByteLevel decoder does: each character back to its byte, the bytes read
    /// as UTF-8 (a sequence cut inside a character becomes U+FFFD).
    public func decode(tokens pieces: [String]) -> String {
        var bytes: [UInt8] = []
        for piece in pieces {
            for character in piece.unicodeScalars {
                if let byte = Self.byteOfCharacter[character] { bytes.append(byte) } else { bytes += Array(String(character).utf8) }
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The inverse of `byteCharacters`.
    static let byteOfCharacter: [Unicode.Scalar: UInt8] = {
        var table: [Unicode.Scalar: UInt8] = [:]
        for (byte, character) in byteCharacters.enumerated() { table[character.unicodeScalars.first!] = UInt8(byte) }
        return table
    }()
}
