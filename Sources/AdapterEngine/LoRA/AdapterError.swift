/// Why a PEFT adapter was refused.
public enum AdapterError: Error, CustomStringConvertible, Sendable {
    case missingFile(adapter: String, file: String)
    case invalidConfig(adapter: String, field: String, reason: String)
    case unsupportedOption(adapter: String, field: String, value: String)
    case unsupportedTarget(adapter: String, module: String, moduleType: String)
    /// The adapter's PEFT method cannot adapt this module here (`reason` says which method and where it is served).
    case methodCannotAdapt(adapter: String, module: String, reason: String)
    /// A weighted blend of adapters that cannot be computed exactly.
    case blendRefused(blend: String, reason: String)
    case noTargetMatched(adapter: String, targets: String)
    case missingTensor(adapter: String, tensor: String)
    case unexpectedTensor(adapter: String, tensor: String)
    case shapeMismatch(adapter: String, tensor: String, shape: [Int], expected: [Int], reason: String)
    case invalidLabels(adapter: String, reason: String)
    case weights(adapter: String, SafeTensorsError)
    /// A weight that is NaN, infinite or too large for any forward pass to stay finite.
    case invalidValue(adapter: String, tensor: String, index: Int, value: Float, limit: Float)

    public var description: String {
        switch self {
        case let .missingFile(adapter, file):
            return "adapter '\(adapter)': missing \(file) (a PEFT adapter directory holds adapter_config.json and adapter_model.safetensors)"
        case let .invalidConfig(adapter, field, reason):
            return "adapter '\(adapter)': adapter_config.json field '\(field)': \(reason)"
        case let .unsupportedOption(adapter, field, value):
            return "adapter '\(adapter)': adapter_config.json sets '\(field)' = \(value), which this engine does not implement; save the adapter without it"
        case let .unsupportedTarget(adapter, module, type):
            return "adapter '\(adapter)': target_modules selects '\(module)' (\(type)); LoRA applies to Linear and Embedding layers only"
        case let .methodCannotAdapt(adapter, module, reason):
            return "adapter '\(adapter)': target_modules selects '\(module)': \(reason)"
        case let .blendRefused(blend, reason):
            return "blend '\(blend)': \(reason)"
        case let .noTargetMatched(adapter, targets):
            return "adapter '\(adapter)': target_modules \(targets) matches no module of the base model"
        case let .missingTensor(adapter, tensor):
            return "adapter '\(adapter)': adapter_model.safetensors has no tensor '\(tensor)' although adapter_config.json targets its module"
        case let .unexpectedTensor(adapter, tensor):
            return "adapter '\(adapter)': tensor '\(tensor)' does not belong to any module adapter_config.json targets"
        case let .shapeMismatch(adapter, tensor, shape, expected, reason):
            return "adapter '\(adapter)': tensor '\(tensor)' has shape \(shape), expected \(expected) (\(reason))"
        case let .invalidLabels(adapter, reason):
            return "adapter '\(adapter)': labels.json: \(reason)"
        case let .weights(adapter, error):
            return "adapter '\(adapter)': \(error)"
        case let .invalidValue(adapter, tensor, index, value, limit):
            return "adapter '\(adapter)': tensor '\(tensor)' holds \(value) at element \(index); weights must be finite and within ±\(limit)"
        }
    }
}
