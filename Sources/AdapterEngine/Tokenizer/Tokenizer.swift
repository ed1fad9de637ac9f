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
        let type: String
        do {
            type = try Self.modelType(path)
        } catch {
            throw .invalidFile(file: path, reason: "not readable JSON: \(error)")
        }
        switch type {
        case "WordPiece": self = .wordPiece(try WordPieceTokenizer(modelDirectory: modelDirectory, maxLength: maxLength))
        case "BPE": self = .bytePairs(try BPETokenizer(path: path, maxLength: maxLength))
        case "Unigram": self = .unigram(try UnigramTokenizer(path: path, maxLength: maxLength))
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

    /// `model.type` of a `tokenizer.json`.
    private static func modelType(_ path: String) throws -> String {
        let root = try JSONValue.parse([UInt8](Data(contentsOf: URL(fileURLWithPath: path))))
        guard case .string(let type)? = root["model"]?["type"] else { return "(none)" }
        return type
    }
}
