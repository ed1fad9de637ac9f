/// Why a safetensors file was refused.
public enum SafeTensorsError: Error, CustomStringConvertible, Equatable, Sendable {
    case cannotOpen(file: String, reason: String)
    case truncatedHeader(file: String, fileSize: Int)
    case headerTooLarge(file: String, headerSize: UInt64, fileSize: Int)
    case invalidHeader(file: String, reason: String)
    case unknownDType(file: String, tensor: String, dtype: String)
    case invalidShape(file: String, tensor: String, shape: [Int])
    case sizeMismatch(file: String, tensor: String, shape: [Int], dtype: String, expectedBytes: Int, actualBytes: Int)
    case outOfBounds(file: String, tensor: String, range: [Int], dataSize: Int)
    case overlapping(file: String, first: String, second: String)
    case missingTensor(file: String, tensor: String)
    case notFloatingPoint(file: String, tensor: String, dtype: String)

    public var description: String {
        switch self {
        case let .cannotOpen(file, reason):
            return "\(file): cannot open: \(reason)"
        case let .truncatedHeader(file, size):
            return "\(file): truncated safetensors file (\(size) bytes; needs an 8-byte header length and a JSON header)"
        case let .headerTooLarge(file, header, size):
            // The declared length is the file's first 8 bytes: never echoed, so an error cannot leak file content.
            _ = header
            return "\(file): not a safetensors file (its declared header length does not fit in its \(size) bytes)"
        case let .invalidHeader(file, reason):
            return "\(file): invalid safetensors header: \(reason)"
        case let .unknownDType(file, tensor, dtype):
            return "\(file): tensor '\(tensor)' has unknown dtype '\(dtype)'"
        case let .invalidShape(file, tensor, shape):
            return "\(file): tensor '\(tensor)' has invalid shape \(shape)"
        case let .sizeMismatch(file, tensor, shape, dtype, expected, actual):
            return "\(file): tensor '\(tensor)' is \(dtype) \(shape) = \(expected) bytes, but its data range holds \(actual) bytes"
        case let .outOfBounds(file, tensor, range, size):
            return "\(file): tensor '\(tensor)' data range \(range) lies outside the \(size)-byte data section"
        case let .overlapping(file, first, second):
            return "\(file): tensors '\(first)' and '\(second)' overlap"
        case let .missingTensor(file, tensor):
            return "\(file): no tensor named '\(tensor)'"
        case let .notFloatingPoint(file, tensor, dtype):
            return "\(file): tensor '\(tensor)' is \(dtype), expected F32, F16 or BF16"
        }
    }
}
