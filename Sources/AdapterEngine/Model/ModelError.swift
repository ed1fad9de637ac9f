/// Why a base model could not be loaded.
public enum ModelError: Error, CustomStringConvertible, Sendable {
    case invalidConfig(file: String, reason: String)
    case unsupported(file: String, field: String, value: String)
    case weightShape(file: String, tensor: String, shape: [Int], expected: [Int])
    case weights(SafeTensorsError)
    case tokenizer(TokenizerError)

    public var description: String {
        switch self {
        case let .invalidConfig(file, reason):
            return "\(file): \(reason)"
        case let .unsupported(file, field, value):
            return "\(file): \(field) = \(value) is not supported (this engine runs BERT encoders (model_type \(BertConfig.supportedModelTypes.joined(separator: ", "))) with GELU and absolute positions, pooled by CLS, mean, max or mean-sqrt-length)"
        case let .weightShape(file, tensor, shape, expected):
            return "\(file): tensor '\(tensor)' has shape \(shape), config.json implies \(expected)"
        case let .weights(error):
            return error.description
        case let .tokenizer(error):
            return error.description
        }
    }
}
