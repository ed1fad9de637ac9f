import Foundation

/// A model's tokenizer, of the kind its `tokenizer.json` declares (a directory with only `vocab.txt` is WordPiece).
public enum Tokenizer: Sendable {
    /// BERT's WordPiece (BERT, DistilBERT, bge/gte/e5).
    case wordPiece(WordPieceTokenizer)
    /// Byte-level BPE (RoBERTa, ModernBERT).
    case bytePairs(BPETokenizer)
    /// SentencePiece-style Unigram with Metaspace (XLM-RoBERTa).
    case unigram(UnigramTokenizer)

    /// Loads the tokenizer of a model directory; kinds not implemented (SentencePiece Unigram, say) are refused by name.
    public init(modelDirectory: String, maxLength: Int = 128) throws(TokenizerError) {
        let path = modelDirectory + "/tokenizer.json"
        guard FileManager.default.fileExists(atPath: path) else {
            self = .wordPiece(try WordPieceTokenizer(modelDirectory: modelDirectory, maxLength: maxLength))
            return
        }
        let root = try Self.readJSON(path: path)
        let type: String
        if case .string(let name)? = root["model"]?["type"] { type = name } else { type = "(none)" }
        switch type {
        case "WordPiece": self = .wordPiece(try WordPieceTokenizer(modelDirectory: modelDirectory, maxLength: maxLength))
        case "BPE": self = .bytePairs(try BPETokenizer(root: root, path: path, maxLength: maxLength))
        case "Unigram": self = .unigram(try UnigramTokenizer(root: root, path: path, maxLength: maxLength))
        default: throw .invalidFile(file: path, reason: "tokenizer model '\(type)' is not implemented (WordPiece, byte-level BPE, Unigram)")
        }
    }

    /// The ids of `text`, special tokens included, and whether it was cut to the maximum length.
    public func encode(_ text: String) -> Encoding {
        switch self {
        case .wordPiece(let tokenizer): return tokenizer.encode(text)
        case .bytePairs(let tokenizer): return tokenizer.encoding(text)
        case .unigram(let tokenizer): return tokenizer.encoding(text)
        }
    }

    /// `text`'s ids (as `encode` gives them) with each id's span in `text`, in Unicode scalars (Python's string
    /// indices), as Hugging Face's fast tokenizers give them; nil for special tokens.
    public func encodeWithOffsets(_ text: String) -> (ids: [Int32], offsets: [Range<Int>?]) {
        switch self {
        case .wordPiece(let tokenizer): return tokenizer.encodeWithOffsets(text)
        case .bytePairs(let tokenizer): return tokenizer.encodeWithOffsets(text)
        case .unigram(let tokenizer): return tokenizer.encodeWithOffsets(text)
        }
    }

    /// The vocabulary's string for `id`.
    public func token(for id: Int32) -> String? {
        switch self {
        case .wordPiece(let tokenizer): return tokenizer.token(for: id)
        case .bytePairs(let tokenizer): return tokenizer.token(for: id)
        case .unigram(let tokenizer): return tokenizer.token(for: id)
        }
    }

    /// Tokens joined back into text as the tokenizer's decoder does.
    public func decode(tokens: [String]) -> String {
        switch self {
        case .wordPiece(let tokenizer): return tokenizer.decode(tokens: tokens)
        case .bytePairs(let tokenizer): return tokenizer.decode(tokens: tokens)
        case .unigram(let tokenizer): return tokenizer.decode(tokens: tokens)
        }
    }

    /// A text pair's ids, laid out by the tokenizer's pair template (BERT's `[CLS] A [SEP] B [SEP]` with B of token
    /// type 1, RoBERTa's `<s> A </s></s> B </s>`), the longer text cut first to the maximum length. Refused when
    /// `tokenizer.json`'s post-processor has no pair template.
    public func encode(_ text: String, pair: String) throws(TokenizerError) -> Encoding {
        let encoding: Encoding?
        switch self {
        case .wordPiece(let tokenizer): encoding = tokenizer.encode(text, pair: pair)
        case .bytePairs(let tokenizer): encoding = tokenizer.encoding(text, pair: pair)
        case .unigram(let tokenizer): encoding = tokenizer.encoding(text, pair: pair)
        }
        guard let encoding else { throw .invalidFile(file: "tokenizer.json", reason: "its post_processor has no pair template: this model takes one text, not a pair") }
        return encoding
    }

    /// The parsed `tokenizer.json` at `path` (read once, whichever tokenizer it holds).
    static func readJSON(path: String) throws(TokenizerError) -> JSONValue {
        do {
            return try JSONValue.parse([UInt8](Data(contentsOf: URL(fileURLWithPath: path))))
        } catch {
            throw .invalidFile(file: path, reason: "not readable JSON: \(error)")
        }
    }
}
