/// GPT-2's pre-tokenisation, as byte-level BPE's `ByteLevel` pre-tokenizer runs it: the regular expression
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` over Unicode scalars, written out
/// by hand (a compiled `Regex` per text cost most of the tokenizer's time).
enum ByteLevelPreTokenizer {
    /// What the expression tells scalars apart by.
    private enum Kind: UInt8 {
        case letter, number, space, other
    }

    /// The kinds of ASCII scalars, looked up rather than asked of the Unicode tables.
    private static let ascii: [Kind] = (0..<128).map { kind(of: Unicode.Scalar(UInt8($0))) }

    private static func kind(of scalar: Unicode.Scalar) -> Kind {
        let properties = scalar.properties
        if properties.isWhitespace { return .space }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }

    private static func classify(_ scalar: Unicode.Scalar) -> Kind {
        scalar.value < 128 ? ascii[Int(scalar.value)] : kind(of: scalar)
    }

    /// The words of `scalars`, as ranges of it, in order (together they cover every scalar).
    static func words(_ scalars: [Unicode.Scalar]) -> [Range<Int>] {
        let count = scalars.count
        var kinds = [Kind](); kinds.reserveCapacity(count)
        for scalar in scalars { kinds.append(classify(scalar)) }
        var words: [Range<Int>] = []
        var start = 0
        while start < count {
            let end = wordEnd(from: start, scalars, kinds)
            words.append(start..<end)
            start = end
        }
        return words
    }

    /// Where the word starting at `start` ends: the expression's alternatives in its order.
    private static func wordEnd(from start: Int, _ scalars: [Unicode.Scalar], _ kinds: [Kind]) -> Int {
        let count = scalars.count
        // 's 't 're 've 'm 'll 'd
        if scalars[start] == "'", start + 1 < count {
            let next = scalars[start + 1]
            if next == "s" || next == "t" || next == "m" || next == "d" { return start + 2 }
            if start + 2 < count {
                let pair = (next, scalars[start + 2])
                if pair == ("r", "e") || pair == ("v", "e") || pair == ("l", "l") { return start + 3 }
            }
        }
        // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+': one optional space, then a run of one kind.
        let first = scalars[start] == " " && start + 1 < count ? start + 1 : start
        let kind = kinds[first]
        if kind != .space {
            var end = first + 1
            while end < count, kinds[end] == kind { end += 1 }
            return end
        }
        // '\s+(?!\S)': whitespace up to the end, or all but the last before something else; '\s+' when one is all.
        var end = start + 1
        while end < count, kinds[end] == .space { end += 1 }
        if end == count || end - start == 1 { return end }
        return end - 1
    }
}
