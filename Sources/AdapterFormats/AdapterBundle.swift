import Foundation

/// An adapter's (or a router's) files as one byte stream, the payload of a push: for each file of its
/// `ArtifactKind.files` that exists, in that order, its name, a NUL byte, its length as 8 bytes little-endian, then its bytes. The stream's
/// SHA-256 equals `AdapterDigest.sha256(ofAdapterAt:)` of the directory it came from.
public enum AdapterBundle {
    /// The bundle of the adapter in `directory`.
    public static func encode(directory: String) throws(StoreError) -> [UInt8] {
        var out: [UInt8] = []
        let kind = ArtifactKind.of(directory: directory)
        for file in kind.files {
            let path = directory + "/" + file
            guard let data = FileManager.default.contents(atPath: path) else {
                if !kind.requiredFiles.contains(file) { continue }
                throw .notAnAdapter(directory: directory, missing: file)
            }
            out += Array(file.utf8) + [0]
            withUnsafeBytes(of: UInt64(data.count).littleEndian) { out += $0 }
            out += data
        }
        return out
    }

    /// The file entry starting at byte `offset` of `bytes`: its name and where its contents lie. Throws when no
    /// well-formed entry starts there (a name of at most 64 bytes, its NUL, a length that stays inside `bytes`).
    static func entry(at offset: Int, in bytes: UnsafeRawBufferPointer) throws(PushError) -> (name: String, contents: Range<Int>) {
        guard let nul = bytes[offset...].firstIndex(of: 0), nul - offset <= 64 else {
            throw .malformedBundle("no file name at byte \(offset)")
        }
        let name = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[offset..<nul]), as: UTF8.self)
        guard nul + 9 <= bytes.count else { throw .malformedBundle("'\(name)' has no length") }
        var length: UInt64 = 0
        withUnsafeMutableBytes(of: &length) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[(nul + 1)..<(nul + 9)])) }
        length = UInt64(littleEndian: length)
        let start = nul + 9
        guard length <= UInt64(bytes.count - start) else {
            throw .malformedBundle("'\(name)' declares \(length) bytes, only \(bytes.count - start) follow")
        }
        return (name, start..<(start + Int(length)))
    }

    /// Writes the files of the bundle in `bytes` into `directory` (which must exist). Only the known file names
    /// of one kind, each at most once and in order, with lengths inside the bundle, are accepted.
    public static func unpack(_ bytes: UnsafeRawBufferPointer, into directory: String) throws(PushError) {
        var offset = 0
        var kind: ArtifactKind?
        var expected = ArraySlice<String>()
        while offset < bytes.count {
            let (name, contents) = try entry(at: offset, in: bytes)
            if kind == nil, let first = ArtifactKind.starting(with: name) {
                kind = first
                expected = first.files[...]
            }
            guard let position = expected.firstIndex(of: name) else {
                let layouts = ArtifactKind.allCases.map { $0.files.joined(separator: ", ") }.joined(separator: " or ")
                throw .malformedBundle("unexpected file '\(name)' at byte \(offset); a bundle holds \(layouts) in that order")
            }
            expected = expected[(position + 1)...]
            let path = directory + "/" + name
            do {
                try Data(UnsafeRawBufferPointer(rebasing: bytes[contents])).write(to: URL(fileURLWithPath: path))
            } catch {
                throw PushError.writeFailure(error, path: path)
            }
            offset = contents.upperBound
        }
        for required in (kind ?? .adapter).requiredFiles where !FileManager.default.fileExists(atPath: directory + "/" + required) {
            throw .malformedBundle("it holds no \(required)")
        }
    }
}
