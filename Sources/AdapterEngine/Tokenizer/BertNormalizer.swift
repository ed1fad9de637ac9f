import Foundation

/// BERT's text normalisation, as Hugging Face `tokenizers` applies it: drop control characters and map
/// whitespace to spaces, put spaces around CJK ideographs, strip accents, lower-case.
public struct BertNormalizer: Sendable {
    /// Remove control characters and turn every whitespace character into a space.
    public var cleanText = true
    /// Surround CJK ideographs with spaces so each becomes its own word.
    public var handleChineseChars = true
    /// Strip combining marks after canonical decomposition; `nil` follows `lowercase`, as BERT does.
    public var stripAccents: Bool? = nil
    /// Lower-case with Unicode's full case mapping.
    public var lowercase = true

    /// Creates a normaliser with BERT-uncased defaults.
    public init(cleanText: Bool = true, handleChineseChars: Bool = true, stripAccents: Bool? = nil, lowercase: Bool = true) {
        self.cleanText = cleanText
        self.handleChineseChars = handleChineseChars
        self.stripAccents = stripAccents
        self.lowercase = lowercase
    }

    /// Normalises `text`.
    public func normalize(_ text: String) -> String {
        // Printable ASCII (most sensor and app text): cleaning, CJK spacing and accent stripping change nothing, and
        // lowercasing is A–Z only. The general path's Unicode property lookups and NFD took most of a request's
        // tokenising time.
        if text.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) {
            guard lowercase else { return text }
            return String(decoding: text.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }, as: UTF8.self)
        }
        var scalars = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if cleanText {
                if scalar.value == 0 || scalar.value == 0xFFFD || Self.isControl(scalar) { continue }
                if Self.isWhitespace(scalar) {
                    scalars.append(" ")
                    continue
                }
            }
            if handleChineseChars && Self.isChineseChar(scalar) {
                scalars.append(" ")
                scalars.append(scalar)
                scalars.append(" ")
            } else {
                scalars.append(scalar)
            }
        }
        var result = String(scalars)
        if stripAccents ?? lowercase {
            var stripped = String.UnicodeScalarView()
            for scalar in result.decomposedStringWithCanonicalMapping.unicodeScalars
            where scalar.properties.generalCategory != .nonspacingMark {
                stripped.append(scalar)
            }
            result = String(stripped)
        }
        if lowercase {
            var lowered = ""
            lowered.reserveCapacity(result.utf8.count)
            for scalar in result.unicodeScalars {
                lowered += scalar.properties.lowercaseMapping
            }
            result = lowered
        }
        return result
    }

    /// `scalars` normalised as `normalize` does, each output scalar with the index of the input scalar it came from
    /// (for character offsets; a per-scalar path, slower than `normalize`).
    public func normalizeWithOrigins(_ scalars: [Unicode.Scalar]) -> [(scalar: Unicode.Scalar, origin: Int)] {
        var result: [(scalar: Unicode.Scalar, origin: Int)] = []
        result.reserveCapacity(scalars.count)
        for (index, scalar) in scalars.enumerated() {
            if cleanText {
                if scalar.value == 0 || scalar.value == 0xFFFD || Self.isControl(scalar) { continue }
                if Self.isWhitespace(scalar) {
                    result.append((" ", index))
                    continue
                }
            }
            let spaced: [Unicode.Scalar] = handleChineseChars && Self.isChineseChar(scalar) ? [" ", scalar, " "] : [scalar]
            for piece in spaced {
                var mapped = [piece]
                if stripAccents ?? lowercase {
                    mapped = String(piece).decomposedStringWithCanonicalMapping.unicodeScalars.filter { $0.properties.generalCategory != .nonspacingMark }
                }
                if lowercase { mapped = mapped.flatMap { Array($0.properties.lowercaseMapping.unicodeScalars) } }
                for out in mapped { result.append((out, index)) }
            }
        }
        return result
    }

    /// Unicode "Other" categories, except tab, newline and carriage return (which count as whitespace).
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "\t", "\n", "\r": return false
        default:
            switch scalar.properties.generalCategory {
            case .control, .format, .surrogate, .privateUse, .unassigned: return true
            default: return false
            }
        }
    }

    /// Unicode White_Space, plus tab, newline and carriage return.
    static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "\t", "\n", "\r", " ": return true
        default: return scalar.properties.isWhitespace
        }
    }

    /// The CJK Unified Ideographs blocks BERT treats as single-character words.
    static func isChineseChar(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
             0x2B740...0x2B81F, 0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default:
            return false
        }
    }
}
