/// The special tokens of a `tokenizer.json`: the added ones, matched in the raw text before anything else, and the
/// ones its post-processor puts around a sequence (`RobertaProcessing`, `BertProcessing`, or a `TemplateProcessing`
/// single template).
struct SpecialTokens: Sendable {
    /// Added special tokens, matched in the raw text.
    let added: AddedTokens
    /// Ids before and after one sequence.
    let prefix: [Int32]
    let suffix: [Int32]
    /// How a pair is laid out (nil: the post-processor has no pair template).
    let pair: [PairItem]?

    /// One item of a pair template, with its token type.
    enum PairItem: Sendable, Equatable {
        case special(id: Int32, type: Int32)
        case first(type: Int32)
        case second(type: Int32)
    }

    /// Reads them from the parsed `tokenizer.json` at `path`; a post-processor not implemented is refused by name.
    init(root: JSONValue, path: String) throws(TokenizerError) {
        func invalid(_ reason: String) -> TokenizerError { .invalidFile(file: path, reason: reason) }
        added = AddedTokens(root: root)

        func special(_ value: JSONValue?) throws(TokenizerError) -> Int32 {
            guard case .array(let pair) = value, pair.count == 2, case .number(let id) = pair[1], let exact = Int32(exactly: id) else {
                throw invalid("post_processor special token is not [token, id]")
            }
            return exact
        }
        let post = root["post_processor"] ?? .null
        switch post["type"] {
        case .string("RobertaProcessing")?, .string("BertProcessing")?:
            let cls = try special(post["cls"]), sep = try special(post["sep"])
            prefix = [cls]
            suffix = [sep]
            // RoBERTa: <s> A </s></s> B </s>, every type 0 (type_vocab_size 1); BERT: [CLS] A [SEP] B [SEP], B's part 1.
            pair = post["type"] == .string("RobertaProcessing")
                ? [.special(id: cls, type: 0), .first(type: 0), .special(id: sep, type: 0), .special(id: sep, type: 0), .second(type: 0), .special(id: sep, type: 0)]
                : [.special(id: cls, type: 0), .first(type: 0), .special(id: sep, type: 0), .second(type: 1), .special(id: sep, type: 1)]
        case .string("TemplateProcessing")?:
            guard case .array(let single) = post["single"] else { throw invalid("TemplateProcessing has no 'single' template") }
            var before: [Int32] = [], after: [Int32] = [], seenSequence = false
            for item in single {
                if let sequence = item["Sequence"] {
                    guard sequence["id"] == .string("A"), !seenSequence else { throw invalid("the single template holds a sequence other than one A") }
                    seenSequence = true
                } else if case .string(let name) = item["SpecialToken"]?["id"] {
                    guard case .array(let ids) = post["special_tokens"]?[name]?["ids"], ids.count == 1, case .number(let id) = ids[0], let exact = Int32(exactly: id) else {
                        throw invalid("TemplateProcessing's special token '\(name)' has no single id")
                    }
                    if seenSequence { after.append(exact) } else { before.append(exact) }
                } else {
                    throw invalid("TemplateProcessing item \(item.summary) is not implemented")
                }
            }
            (prefix, suffix) = (before, after)
            if case .array(let items) = post["pair"] {
                var template: [PairItem] = []
                for item in items {
                    let type: Int32
                    if case .number(let number)? = (item["Sequence"] ?? item["SpecialToken"])?["type_id"] { type = Int32(number) } else { type = 0 }
                    if let sequence = item["Sequence"] {
                        template.append(sequence["id"] == .string("B") ? .second(type: type) : .first(type: type))
                    } else if case .string(let name) = item["SpecialToken"]?["id"],
                              case .array(let ids) = post["special_tokens"]?[name]?["ids"], ids.count == 1, case .number(let id) = ids[0],
                              let exact = Int32(exactly: id) {
                        template.append(.special(id: exact, type: type))
                    } else {
                        throw invalid("TemplateProcessing pair item \(item.summary) is not implemented")
                    }
                }
                pair = template
            } else {
                pair = nil
            }
        case nil where post == .null:
            (prefix, suffix, pair) = ([], [], nil)
        default:
            throw invalid("post_processor \(post["type"]?.summary ?? "?") is not implemented (RobertaProcessing, BertProcessing, TemplateProcessing)")
        }
    }

    /// `text` cut around its special tokens: (piece, nil) for ordinary text, (its content, id) for a special token.
    func split(_ text: String) -> [(String, Int32?)] { added.split(text) }

    /// Cuts the longer of `a` and `b` one id at a time until both fit in `room` (transformers' `longest_first`);
    /// whether anything was cut.
    static func truncateLongestFirst(_ a: inout [Int32], _ b: inout [Int32], room: Int) -> Bool {
        var cut = false
        while a.count + b.count > max(room, 0) {
            cut = true
            if a.count >= b.count { a.removeLast() } else { b.removeLast() }
        }
        return cut
    }

    /// A pair's ids laid out by the pair template, each text's special tokens as theirs and the rest through
    /// `encodePiece`, the longer text cut first to fit `limit`; nil when the tokenizer has no pair template.
    func encode(_ text: String, pair second: String, limit: Int, encodePiece: (String) -> [Int32]) -> Encoding? {
        guard let pair else { return nil }
        func ids(_ text: String) -> [Int32] {
            split(text).flatMap { piece, special in special.map { [$0] } ?? encodePiece(piece) }
        }
        var a = ids(text), b = ids(second)
        let specials = pair.count { if case .special = $0 { true } else { false } }
        let truncated = Self.truncateLongestFirst(&a, &b, room: limit - specials)
        var out: [Int32] = [], types: [Int32] = []
        for item in pair {
            switch item {
            case let .special(id, type): out.append(id); types.append(type)
            case .first(let type): out += a; types += [Int32](repeating: type, count: a.count)
            case .second(let type): out += b; types += [Int32](repeating: type, count: b.count)
            }
        }
        return Encoding(ids: out, truncated: truncated, typeIds: types)
    }

    /// `encode(_:limit:encodePiece:)` with each id's span in `text` in Unicode scalars (nil for special tokens):
    /// `encodePiece` gets each piece between special tokens and the scalar offset where it starts.
    func encodeWithOffsets(
        _ text: String, limit: Int, encodePiece: (String, Int) -> [(id: Int32, span: Range<Int>)]
    ) -> (ids: [Int32], offsets: [Range<Int>?]) {
        var ids: [Int32] = [], offsets: [Range<Int>?] = []
        var start = 0
        for (piece, special) in split(text) {
            if let special {
                ids.append(special)
                offsets.append(nil)
            } else {
                for (id, span) in encodePiece(piece, start) {
                    ids.append(id)
                    offsets.append(span)
                }
            }
            start += piece.unicodeScalars.count
        }
        let room = max(0, limit - prefix.count - suffix.count)
        let none = { (count: Int) in [Range<Int>?](repeating: nil, count: count) }
        return (prefix + ids.prefix(room) + suffix, none(prefix.count) + offsets.prefix(room) + none(suffix.count))
    }

    /// `text`'s ids: its special tokens as theirs, the text between them through `encodePiece`, all between the
    /// prefix and the suffix and cut so the whole is at most `limit` long (the suffix kept).
    func encode(_ text: String, limit: Int, encodePiece: (String) -> [Int32]) -> Encoding {
        var ids: [Int32] = []
        for (piece, special) in split(text) {
            if let special { ids.append(special) } else { ids += encodePiece(piece) }
        }
        let room = max(0, limit - prefix.count - suffix.count)
        return Encoding(ids: prefix + ids.prefix(room) + suffix, truncated: ids.count > room)
    }
}
