import Crypto
import Foundation

/// The identity of an adapter's contents.
public enum AdapterDigest {
    /// SHA-256 over the artifact's files (an adapter's or a router's, `ArtifactKind`), each as name, NUL, 8-byte
    /// little-endian length, bytes.
    public static func sha256(ofAdapterAt directory: String) throws(StoreError) -> String {
        var hasher = SHA256()
        let kind = ArtifactKind.of(directory: directory)
        for file in kind.files {
            let path = directory + "/" + file
            guard FileManager.default.fileExists(atPath: path) else {
                if !kind.requiredFiles.contains(file) { continue }
                throw .notAnAdapter(directory: directory, missing: file)
            }
            // Only regular files: a symbolic link could make the worker read (and store) any file on the box.
            let type = (try? FileManager.default.attributesOfItem(atPath: path))?[.type] as? FileAttributeType
            guard type == .typeRegular else { throw .notRegularFile(path: path) }
            let data: Data
            do {
                data = try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe)
            } catch {
                throw .unreadable(path: path, reason: error.localizedDescription)
            }
            hasher.update(data: Data(file.utf8) + [0])
            withUnsafeBytes(of: UInt64(data.count).littleEndian) { hasher.update(bufferPointer: $0) }
            hasher.update(data: data)
        }
        return hex(hasher.finalize())
    }

    /// SHA-256 of bytes in memory, lowercase hex.
    public static func sha256(of bytes: [UInt8]) -> String {
        hex(SHA256.hash(data: bytes))
    }

    /// SHA-256 of one file, streamed (for the base model's fingerprint).
    public static func sha256(ofFile path: String) throws(StoreError) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw .unreadable(path: path, reason: "cannot open") }
        defer { try? handle.close() }
        var hasher = SHA256()
        while true {
            let chunk: Data?
            do {
                chunk = try handle.read(upToCount: 4 << 20)
            } catch {
                throw .unreadable(path: path, reason: error.localizedDescription)
            }
            guard let chunk, !chunk.isEmpty else { break }
            hasher.update(data: chunk)
        }
        return hex(hasher.finalize())
    }

    public static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        for byte in digest {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
