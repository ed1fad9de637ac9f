import Crypto
import Foundation

/// A byte range of an adapter bundle with its SHA-256: a file's entry (name, length and bytes, for small files),
/// a safetensors file's entry header and JSON header, or one tensor's bytes. A delta push lists a bundle's pieces;
/// the worker already holds those it finds in any stored adapter, and only the others travel.
public struct BundlePiece: Codable, Sendable, Equatable {
    /// What the range holds, for people: `adapter_config.json`, `adapter_model.safetensors header`, or
    /// `adapter_model.safetensors: <tensor name> <dtype> [shape]`.
    public var name: String
    public var offset: Int64
    public var length: Int64
    /// SHA-256 of the range, lowercase hex.
    public var sha256: String

    public init(name: String, offset: Int64, length: Int64, sha256: String) {
        self.name = name
        self.offset = offset
        self.length = length
        self.sha256 = sha256
    }

    /// The pieces of `bundle` (an `AdapterBundle`), in order, covering it exactly: each file entry is one piece,
    /// except a safetensors file, whose entry header plus JSON header is one piece and each tensor (and any gap
    /// between tensors) another. Throws when the bundle is malformed.
    public static func pieces(of bundle: UnsafeRawBufferPointer) throws(PushError) -> [BundlePiece] {
        var pieces: [BundlePiece] = []
        func add(_ name: String, _ start: Int, _ end: Int) {
            guard end > start else { return }
            let digest = AdapterDigest.hex(SHA256.hash(data: UnsafeRawBufferPointer(rebasing: bundle[start..<end])))
            pieces.append(BundlePiece(name: name, offset: Int64(start), length: Int64(end - start), sha256: digest))
        }
        var offset = 0
        while offset < bundle.count {
            let (name, contents) = try AdapterBundle.entry(at: offset, in: bundle)
            let (start, end) = (contents.lowerBound, contents.upperBound)
            if name.hasSuffix(".safetensors"), let tensors = tensorRanges(UnsafeRawBufferPointer(rebasing: bundle[start..<end])) {
                // Entry header and the safetensors header together; then each tensor, and any gap, on its own.
                add(name + " header", offset, start + tensors.dataStart)
                var cursor = start + tensors.dataStart
                for tensor in tensors.ranges {
                    add(name + " gap", cursor, start + tensor.start)
                    add(name + ": " + tensor.name, start + tensor.start, start + tensor.end)
                    cursor = start + tensor.end
                }
                add(name + " gap", cursor, end)
            } else {
                add(name, offset, end)
            }
            offset = end
        }
        return pieces
    }

    /// The data start and the tensors' byte ranges (relative to the file), by offset, of a well-formed
    /// safetensors file whose tensors do not overlap; nil otherwise (the file is then one piece).
    static func tensorRanges(_ file: UnsafeRawBufferPointer) -> (dataStart: Int, ranges: [(name: String, start: Int, end: Int)])? {
        guard file.count >= 8 else { return nil }
        var headerLength: UInt64 = 0
        withUnsafeMutableBytes(of: &headerLength) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: file[0..<8])) }
        headerLength = UInt64(littleEndian: headerLength)
        guard headerLength <= UInt64(file.count - 8) else { return nil }
        let dataStart = 8 + Int(headerLength)
        guard let header = try? JSONSerialization.jsonObject(with: Data(UnsafeRawBufferPointer(rebasing: file[8..<dataStart]))) as? [String: Any] else {
            return nil
        }
        var ranges: [(name: String, start: Int, end: Int)] = []
        for (name, value) in header where name != "__metadata__" {
            guard let info = value as? [String: Any], let offsets = info["data_offsets"] as? [Int], offsets.count == 2,
                  offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= file.count - dataStart else { return nil }
            let dtype = info["dtype"] as? String ?? "?"
            let shape = (info["shape"] as? [Int]).map { "[" + $0.map(String.init).joined(separator: ", ") + "]" } ?? "[]"
            ranges.append(("\(name) \(dtype) \(shape)", dataStart + offsets[0], dataStart + offsets[1]))
        }
        ranges.sort { $0.start < $1.start }
        for (previous, next) in zip(ranges, ranges.dropFirst()) where next.start < previous.end { return nil }
        return (dataStart, ranges)
    }
}
