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
        let (scalars, origins) = normalizesNFC ? Self.nfcWithOrigins(original) : (original, original.indices.map { $0 })
        let normalized = String(String.UnicodeScalarView(scalars))
        var result: [(id: Int32, span: Range<Int>)] = []
        var position = 0, cursor = normalized.startIndex
        for match in normalized.matches(of: Self.pattern) {
            position += normalized.unicodeScalars.distance(from: cursor, to: match.range.lowerBound)
            cursor = match.range.lowerBound
            let word = normalized[match.range]
            // The scalar (of the word) each of its UTF-8 bytes belongs to.
            var scalarOfByte: [Int] = []
            for (index, scalar) in word.unicodeScalars.enumerated() {
                scalarOfByte += repeatElement(index, count: UTF8.width(scalar))
            }
            var byte = 0
            for symbol in symbols(word) {
                let width = symbol.unicodeScalars.count
                defer { byte += width }
                guard let id = vocabulary[symbol] else { continue }
                let first = origins[position + scalarOfByte[byte]], last = origins[position + scalarOfByte[byte + width - 1]]
                var span = (start + first)..<(start + last + 1)
                if trimsOffsets { span = trimmed(span, symbol: symbol, first: result.isEmpty) }
                result.append((id, span))
            }
        }
        return result
    }

    /// `RobertaProcessing`'s `trim_offsets`: a span without the spaces (`Ġ`) its token starts or ends with.
    private func trimmed(_ span: Range<Int>, symbol: String, first: Bool) -> Range<Int> {
        let space = Self.byteCharacters[0x20].unicodeScalars.first!
        let isSpace = { (scalar: Unicode.Scalar) in scalar == space || scalar.properties.isWhitespace }
        var leading = symbol.unicodeScalars.prefix(while: isSpace).count
        let trailing = symbol.unicodeScalars.reversed().prefix(while: isSpace).count
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
