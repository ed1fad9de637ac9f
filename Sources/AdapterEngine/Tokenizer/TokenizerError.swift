/// Why a tokenizer could not be loaded.
public enum TokenizerError: Error, CustomStringConvertible, Sendable {
    case missingFiles(directory: String)
    case invalidFile(file: String, reason: String)
    case missingSpecialToken(file: String, token: String)

    public var description: String {
        switch self {
        case let .missingFiles(directory):
            return "\(directory): no tokenizer.json or vocab.txt"
        case let .invalidFile(file, reason):
            return "\(file): \(reason)"
        case let .missingSpecialToken(file, token):
            return "\(file): the vocabulary has no '\(token)' token"
        }
    }
}
