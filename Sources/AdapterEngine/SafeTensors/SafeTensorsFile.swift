import Foundation

/// A validated, memory-mapped safetensors file.
///
/// Opening checks the whole header: its length and JSON, every dtype, that each shape's byte size equals
/// its data range, that ranges lie inside the file and that no two overlap. F32 tensors are then served
/// zero-copy from the mapping; F16 and BF16 tensors are converted to F32 when read.
public struct SafeTensorsFile: Sendable {
    /// Path of the file.
    public let path: String
    /// Tensor entries by name.
    public let tensors: [String: TensorInfo]
    /// The optional `__metadata__` string map.
    public let metadata: [String: String]
    private let mapping: MappedFile
    /// Where the data section starts in the file: a tensor's bytes are at `dataOffset + byteRange`.
    public let dataOffset: Int

    /// Largest header accepted; the format's own reference implementation uses the same bound.
    static let maxHeaderSize: UInt64 = 100_000_000

    /// Opens and validates `path`.
    public init(path: String) throws(SafeTensorsError) {
        let mapping = try MappedFile(path: path)
        try self.init(mapping: mapping)
    }

    /// Validates an existing mapping.
    public init(mapping: MappedFile) throws(SafeTensorsError) {
        let path = mapping.path
        guard mapping.count >= 8, let bytes = mapping.bytes else {
            throw .truncatedHeader(file: path, fileSize: mapping.count)
        }
        let headerSize = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
        guard headerSize <= Self.maxHeaderSize, headerSize <= UInt64(mapping.count - 8) else {
            throw .headerTooLarge(file: path, headerSize: headerSize, fileSize: mapping.count)
        }
        let headerData = Data(bytes: bytes + 8, count: Int(headerSize))
        let raw: [String: HeaderEntry]
        do {
            raw = try JSONDecoder().decode([String: HeaderEntry].self, from: headerData)
        } catch let error as DecodingError {
            throw .invalidHeader(file: path, reason: Self.describe(error))
        } catch {
            throw .invalidHeader(file: path, reason: "\(error)")
        }
        let dataOffset = 8 + Int(headerSize)
        let dataSize = mapping.count - dataOffset
        var tensors: [String: TensorInfo] = [:]
        var metadata: [String: String] = [:]
        for (name, entry) in raw {
            switch entry {
            case .metadata(let values):
                guard name == "__metadata__" else {
                    throw .invalidHeader(file: path, reason: "entry '\(name)' is not a tensor")
                }
                metadata = values
            case .tensor(let dtypeName, let shape, let offsets):
                guard name != "__metadata__" else {
                    throw .invalidHeader(file: path, reason: "__metadata__ must be a map of strings")
                }
                tensors[name] = try Self.validate(
                    name: name, dtypeName: dtypeName, shape: shape, offsets: offsets, dataSize: dataSize, file: path)
            }
        }
        let ordered = tensors.values.sorted { ($0.byteRange.lowerBound, $0.byteRange.upperBound) < ($1.byteRange.lowerBound, $1.byteRange.upperBound) }
        for (previous, next) in zip(ordered, ordered.dropFirst())
        where !previous.byteRange.isEmpty && !next.byteRange.isEmpty && next.byteRange.lowerBound < previous.byteRange.upperBound {
            throw .overlapping(file: path, first: previous.name, second: next.name)
        }
        self.path = path
        self.tensors = tensors
        self.metadata = metadata
        self.mapping = mapping
        self.dataOffset = dataOffset
    }

    private static func validate(
        name: String, dtypeName: String, shape: [Int], offsets: [Int], dataSize: Int, file: String
    ) throws(SafeTensorsError) -> TensorInfo {
        guard let dtype = DType(rawValue: dtypeName) else {
            throw .unknownDType(file: file, tensor: name, dtype: dtypeName)
        }
        var elements = 1
        for dimension in shape {
            let (product, overflow) = elements.multipliedReportingOverflow(by: dimension)
            guard dimension >= 0, !overflow else { throw .invalidShape(file: file, tensor: name, shape: shape) }
            elements = product
        }
        let (bytes, overflow) = elements.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow else { throw .invalidShape(file: file, tensor: name, shape: shape) }
        guard offsets.count == 2, offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= dataSize else {
            throw .outOfBounds(file: file, tensor: name, range: offsets, dataSize: dataSize)
        }
        guard offsets[1] - offsets[0] == bytes else {
            throw .sizeMismatch(
                file: file, tensor: name, shape: shape, dtype: dtypeName,
                expectedBytes: bytes, actualBytes: offsets[1] - offsets[0])
        }
        return TensorInfo(name: name, dtype: dtype, shape: shape, byteRange: offsets[0]..<offsets[1])
    }

    private static func describe(_ error: DecodingError) -> String {
        switch error {
        case .dataCorrupted(let context):
            return "not valid JSON (\(context.debugDescription))"
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .keyNotFound(_, let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return "\(path.isEmpty ? "top level" : path): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }

    /// Whether the file holds a tensor called `name`.
    public func contains(_ name: String) -> Bool { tensors[name] != nil }

    /// The tensor `name` as F32: zero-copy for aligned F32 data, converted for F16/BF16.
    public func tensor(_ name: String) throws(SafeTensorsError) -> Tensor {
        guard let info = tensors[name] else { throw .missingTensor(file: path, tensor: name) }
        return try tensor(info)
    }

    /// The tensor described by `info` as F32.
    public func tensor(_ info: TensorInfo) throws(SafeTensorsError) -> Tensor {
        // A non-empty file always has a mapping; `init` refused anything shorter than the header.
        let start = mapping.bytes! + dataOffset + info.byteRange.lowerBound
        let count = info.elementCount
        switch info.dtype {
        case .f32:
            if Int(bitPattern: start) % MemoryLayout<Float>.alignment == 0 {
                let pointer = start.assumingMemoryBound(to: Float.self)
                return Tensor(shape: info.shape, storage: FloatStorage(viewing: pointer, count: count, in: mapping))
            }
            return Tensor(shape: info.shape, storage: FloatStorage(count: count) { out in
                for index in 0..<count {
                    out[index] = Float(bitPattern: UInt32(littleEndian: start.loadUnaligned(fromByteOffset: 4 * index, as: UInt32.self)))
                }
            })
        case .f16:
            return Tensor(shape: info.shape, storage: FloatStorage(count: count) { out in
                for index in 0..<count {
                    let bits = UInt16(littleEndian: start.loadUnaligned(fromByteOffset: 2 * index, as: UInt16.self))
                    out[index] = Float(Float16(bitPattern: bits))
                }
            })
        case .bf16:
            return Tensor(shape: info.shape, storage: FloatStorage(count: count) { out in
                for index in 0..<count {
                    let bits = UInt16(littleEndian: start.loadUnaligned(fromByteOffset: 2 * index, as: UInt16.self))
                    out[index] = Float(bitPattern: UInt32(bits) << 16)
                }
            })
        default:
            throw .notFloatingPoint(file: path, tensor: info.name, dtype: info.dtype.rawValue)
        }
    }
}

/// One value of the header's JSON object: a tensor description or the metadata map.
private enum HeaderEntry: Decodable {
    case tensor(dtype: String, shape: [Int], offsets: [Int])
    case metadata([String: String])

    private enum Keys: String, CodingKey { case dtype, shape, data_offsets }

    init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self)
        if container.contains(.dtype) {
            self = .tensor(
                dtype: try container.decode(String.self, forKey: .dtype),
                shape: try container.decode([Int].self, forKey: .shape),
                offsets: try container.decode([Int].self, forKey: .data_offsets))
        } else {
            self = .metadata(try decoder.singleValueContainer().decode([String: String].self))
        }
    }
}
