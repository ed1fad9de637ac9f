import Foundation

/// Serialises tensors in the safetensors format (header sorted by name, data 8-byte aligned).
public struct SafeTensorsWriter: Sendable {
    private var entries: [(name: String, dtype: DType, shape: [Int], bytes: [UInt8])] = []
    /// Optional `__metadata__` map.
    public var metadata: [String: String] = [:]

    /// An empty file.
    public init() {}

    /// Adds an F32, F16 or BF16 tensor from F32 values.
    public mutating func add(_ name: String, shape: [Int], values: [Float], dtype: DType = .f32) {
        precondition(shape.reduce(1, *) == values.count, "shape \(shape) does not match \(values.count) values")
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.count * dtype.byteSize)
        for value in values {
            switch dtype {
            case .f32: withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes += $0 }
            case .f16: withUnsafeBytes(of: Float16(value).bitPattern.littleEndian) { bytes += $0 }
            case .bf16: withUnsafeBytes(of: UInt16(truncatingIfNeeded: value.bitPattern >> 16).littleEndian) { bytes += $0 }
            default: preconditionFailure("SafeTensorsWriter writes floating-point tensors only")
            }
        }
        entries.append((name, dtype, shape, bytes))
    }

    /// The file's bytes.
    public func data() -> Data {
        var header: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.sorted { $0.key < $1.key }.map { "\(Self.quote($0.key)):\(Self.quote($0.value))" }
            header.append("\"__metadata__\":{" + pairs.joined(separator: ",") + "}")
        }
        var offset = 0
        var body = Data()
        for entry in entries.sorted(by: { $0.name < $1.name }) {
            let shape = entry.shape.map(String.init).joined(separator: ",")
            header.append("\(Self.quote(entry.name)):{\"dtype\":\"\(entry.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + entry.bytes.count)]}")
            body.append(contentsOf: entry.bytes)
            offset += entry.bytes.count
        }
        var json = Array(("{" + header.joined(separator: ",") + "}").utf8)
        while (json.count + 8) % 8 != 0 { json.append(0x20) }
        var file = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(contentsOf: json)
        file.append(body)
        return file
    }

    private static func quote(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}
