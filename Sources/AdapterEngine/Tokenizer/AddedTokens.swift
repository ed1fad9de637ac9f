/// The special tokens a `tokenizer.json` adds (`added_tokens` with `special: true`), found in the raw text before
/// anything else runs, as tokenizers does: a user's text holding `[SEP]` or `</s>` gets that token's id.
struct AddedTokens: Sendable {
    /// The tokens as UTF-8, the longest first (so one containing another is matched whole).
    let tokens: [(content: [UInt8], id: Int32)]
    /// Which bytes one of them starts with.
    private let firstBytes: [Bool]

    /// The special ones of `added_tokens` in the parsed `tokenizer.json` (none when it lists none).
    init(root: JSONValue) {
        var found: [([UInt8], Int32)] = []
        if case .array(let added) = root["added_tokens"] ?? .array([]) {
            for token in added where token["special"] == .bool(true) {
                guard case .string(let content) = token["content"], !content.isEmpty, case .number(let id) = token["id"],
                      let exact = Int32(exactly: id) else { continue }
                found.append((Array(content.utf8), exact))
            }
        }
        tokens = found.sorted { $0.0.count > $1.0.count }
        var firstBytes = [Bool](repeating: false, count: 256)
        for (content, _) in tokens { firstBytes[Int(content[0])] = true }
        self.firstBytes = firstBytes
    }

    /// `text` cut around its special tokens: (piece, nil) for ordinary text, (its content, id) for a special token.
    /// Matched on UTF-8 bytes, the earliest first and the longest of those starting there (exact characters, as
    /// tokenizers matches them).
    func split(_ text: String) -> [(String, Int32?)] {
        let bytes = Array(text.utf8)
        // Most texts hold no byte a special token starts with.
        guard !tokens.isEmpty, bytes.contains(where: { firstBytes[Int($0)] }) else { return [(text, nil)] }
        var pieces: [(String, Int32?)] = []
        var pieceStart = 0, index = 0
        scan: while index < bytes.count {
            if firstBytes[Int(bytes[index])] {
                for (content, id) in tokens where bytes[index...].starts(with: content) {
                    if index > pieceStart { pieces.append((String(decoding: bytes[pieceStart..<index], as: UTF8.self), nil)) }
                    pieces.append((String(decoding: content, as: UTF8.self), id))
                    index += content.count
                    pieceStart = index
                    continue scan
                }
            }
            index += 1
        }
        if pieceStart < bytes.count { pieces.append((String(decoding: bytes[pieceStart...], as: UTF8.self), nil)) }
        return pieces
    }
}
