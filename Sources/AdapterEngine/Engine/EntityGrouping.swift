import Foundation

/// One entity a token classifier found: its label (without `B-`/`I-`), the mean score of its tokens, the tokens'
/// text as the tokenizer decodes it, and its span in the input, in Unicode scalars.
public struct Entity: Sendable, Equatable, Codable {
    public var label: String
    public var score: Float
    public var word: String
    public var start: Int
    public var end: Int

    /// An entity of `label` over `start..<end`.
    public init(label: String, score: Float, word: String, start: Int, end: Int) {
        self.label = label
        self.score = score
        self.word = word
        self.start = start
        self.end = end
    }
}

/// Token predictions grouped into entities as transformers' token-classification pipeline does with
/// `aggregation_strategy="simple"`: each token (specials skipped) takes its arg-max label and softmax score; a token
/// joins the group before it when its tag (`B-X`, `I-X` or a bare `X`, read as `I-X`) has the same entity and is not a
/// `B-`; a group's label is its first tag without the prefix, its score the mean, its word the decoded tokens, its span
/// from the first token's start to the last one's end. Groups labelled `O` are dropped.
public enum EntityGrouping {
    /// The entities of one sequence: `logits` and `offsets` one per token (nil offsets: special tokens), `labels`
    /// the head's, `token(i)` the vocabulary string of token i, `decode` the tokenizer's decoder.
    public static func simple(
        logits: [[Float]], labels: [String], offsets: [Range<Int>?], token: (Int) -> String, decode: ([String]) -> String
    ) -> [Entity] {
        struct Tagged {
            var tag: String
            var score: Float
            var token: String
            var span: Range<Int>
        }
        var tagged: [Tagged] = []
        for (index, row) in logits.enumerated() where index < offsets.count {
            guard let span = offsets[index], let best = row.indices.max(by: { row[$0] < row[$1] }), best < labels.count else { continue }
            let top = row[best]
            let total = row.reduce(Float(0)) { $0 + exp($1 - top) }
            tagged.append(Tagged(tag: labels[best], score: 1 / total, token: token(index), span: span))
        }
        func split(_ tag: String) -> (bi: Character, entity: String) {
            if tag.hasPrefix("B-") { return ("B", String(tag.dropFirst(2))) }
            if tag.hasPrefix("I-") { return ("I", String(tag.dropFirst(2))) }
            return ("I", tag)
        }
        var groups: [[Tagged]] = []
        for item in tagged {
            if let last = groups.last?.last {
                let (bi, entity) = split(item.tag)
                if entity == split(last.tag).entity, bi != "B" {
                    groups[groups.count - 1].append(item)
                    continue
                }
            }
            groups.append([item])
        }
        return groups.compactMap { group in
            let first = group[0]
            let label = first.tag.split(separator: "-", maxSplits: 1).last.map(String.init) ?? first.tag
            guard label != "O" else { return nil }
            return Entity(
                label: label, score: group.reduce(Float(0)) { $0 + $1.score } / Float(group.count), word: decode(group.map(\.token)),
                start: first.span.lowerBound, end: group[group.count - 1].span.upperBound)
        }
    }
}

extension Tokenizer {
    /// The entities of a token classifier's output for `text`, whose ids were `ids`: nil when the tokenizer's offsets
    /// do not line up with `ids` (a text cut differently, say).
    public func entities(text: String, ids: [Int32], logits: [[Float]], labels: [String]) -> [Entity]? {
        let (offsetIDs, offsets) = encodeWithOffsets(text)
        guard offsetIDs == ids, logits.count == ids.count else { return nil }
        return EntityGrouping.simple(
            logits: logits, labels: labels, offsets: offsets, token: { token(for: ids[$0]) ?? "" }, decode: decode(tokens:))
    }
}
