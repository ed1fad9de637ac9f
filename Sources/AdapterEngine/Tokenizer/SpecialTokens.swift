/// The special tokens of a `tokenizer.json`: the added ones, matched in the raw text before anything else, and the
/// ones its post-processor puts around a sequence (`RobertaProcessing`, `BertProcessing`, or a `TemplateProcessing`
/// single template).
struct SpecialTokens: Sendable {
    /// Added special tokens, the longest first (so one containing another is matched whole).
    let added: [(content: String, id: Int32)]
    /// Ids before and after one sequence.
    let prefix: [Int32]
    let suffix: [Int32]

    /// Reads them from the parsed `tokenizer.json` at `path`; a post-processor not implemented is refused by name.
    init(root: JSONValue, path: String) throws(TokenizerError) {
        func invalid(_ reason: String) -> TokenizerError { .invalidFile(file: path, reason: reason) }
        var added: [(String, Int32)] = []
        if case .array(let tokens) = root["added_tokens"] ?? .array([]) {
            for token in tokens where token["special"] == .bool(true) {
                guard case .string(let content) = token["content"], case .number(let id) = token["id"], let exact = Int32(exactly: id) else { continue }
                added.append((content, exact))
            }
        }
        self.added = added.sorted { $0.0.count > $1.0.count }

        func special(_ value: JSONValue?) throws(TokenizerError) -> Int32 {
            guard case .array(let pair) = value, pair.count == 2, case .number(let id) = pair[1], let exact = Int32(exactly: id) else {
                throw invalid("post_processor special token is not [token, id]")
            }
            return exact
        }
        let post = root["post_processor"] ?? .null
        switch post["type"] {
        case .string("RobertaProcessing")?, .string("BertProcessing")?:
            prefix = [try special(post["cls"])]
            suffix = [try special(post["sep"])]
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
        case nil where post == .null:
            (prefix, suffix) = ([], [])
        default:
            throw invalid("post_processor \(post["type"]?.summary ?? "?") is not implemented (RobertaProcessing, BertProcessing, TemplateProcessing)")
        }
    }

    /// `text` cut around its special tokens: (piece, nil) for ordinary text, ("", id) for a special token.
    func split(_ text: String) -> [(String, Int32?)] {
        guard !added.isEmpty else { return [(text, nil)] }
        var pieces: [(String, Int32?)] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            var earliest: (range: Range<Substring.Index>, id: Int32)?
            for (content, id) in added {
                if let range = rest.range(of: content), earliest == nil || range.lowerBound < earliest!.range.lowerBound {
                    earliest = (range, id)
                }
            }
            guard let found = earliest else {
                pieces.append((String(rest), nil))
                break
            }
            if found.range.lowerBound > rest.startIndex { pieces.append((String(rest[..<found.range.lowerBound]), nil)) }
            pieces.append(("", found.id))
            rest = rest[found.range.upperBound...]
        }
        return pieces
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
