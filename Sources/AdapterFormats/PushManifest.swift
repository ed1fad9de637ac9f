import Foundation

/// What a push announces before its chunks: the adapter's identity, the payload's size and digest, how it is cut
/// into chunks, and optionally the base model it was trained on. The signed part is `signedText`.
public struct PushManifest: Codable, Sendable, Equatable {
    /// Smallest and largest chunk a push may use.
    public static let chunkSizes = 1024...(4 << 20)

    public var name: String
    public var version: String
    public var size: Int64
    /// SHA-256 of the payload, lowercase hex (the adapter's content address).
    public var sha256: String
    public var chunkSize: Int
    /// SHA-256 of the base `model.safetensors`, lowercase hex, or empty when the sender did not say.
    public var baseFingerprint: String
    /// A delta push's pieces of the payload (not signed: the assembled payload is checked against `sha256`).
    public var pieces: [BundlePiece]?

    /// Most pieces a manifest may list.
    public static let maxPieces = 100_000

    public init(name: String, version: String, size: Int64, sha256: String, chunkSize: Int, baseFingerprint: String = "", pieces: [BundlePiece]? = nil) {
        self.pieces = pieces
        self.name = name
        self.version = version
        self.size = size
        self.sha256 = sha256
        self.chunkSize = chunkSize
        self.baseFingerprint = baseFingerprint
    }

    /// The exact bytes an ed25519 signature covers: identity, size, digest and base, one `key: value` per line.
    /// The chunk size is a transport detail and is not signed.
    public var signedText: [UInt8] {
        Array("adapterd push v1\nname: \(name)\nversion: \(version)\nsize: \(size)\nsha256: \(sha256)\nbase: \(baseFingerprint)\n".utf8)
    }

    /// Number of chunks.
    public var chunkCount: Int { chunkCount(carrying: size) }

    /// Byte length of chunk `index`.
    public func length(ofChunk index: Int) -> Int { length(ofChunk: index, carrying: size) }

    /// Number of chunks that carry `bytes` (the whole payload, or a delta push's missing pieces).
    public func chunkCount(carrying bytes: Int64) -> Int {
        // Divide before rounding up: `bytes + chunkSize - 1` overflows for sizes near Int64.max.
        bytes <= 0 ? 0 : Int(bytes / Int64(chunkSize) + (bytes % Int64(chunkSize) == 0 ? 0 : 1))
    }

    /// Byte length of chunk `index` of the chunks that carry `bytes`.
    public func length(ofChunk index: Int, carrying bytes: Int64) -> Int {
        Int(min(Int64(chunkSize), bytes - Int64(index) * Int64(chunkSize)))
    }

    /// The manifest without its pieces: what identifies a push (pieces are a transport hint).
    public var withoutPieces: PushManifest {
        var copy = self
        copy.pieces = nil
        return copy
    }

    /// Checks the fields, throwing what is wrong with them.
    public func validate() throws(PushError) {
        for (field, value) in [("name", name), ("version", version)] {
            if let problem = AdapterName.problem(with: value) { throw .invalidManifest("\(field) '\(value)' is invalid: \(problem)") }
        }
        guard size > 0 else { throw .invalidManifest("size must be positive") }
        guard Self.isHexDigest(sha256) else { throw .invalidManifest("sha256 must be 64 lowercase hex digits") }
        guard baseFingerprint.isEmpty || Self.isHexDigest(baseFingerprint) else {
            throw .invalidManifest("base_fingerprint must be empty or 64 lowercase hex digits")
        }
        guard Self.chunkSizes.contains(chunkSize) else {
            throw .invalidManifest("chunk_size \(chunkSize) is outside \(Self.chunkSizes.lowerBound)...\(Self.chunkSizes.upperBound)")
        }
        if let pieces {
            guard pieces.count <= Self.maxPieces else { throw .invalidManifest("\(pieces.count) pieces, more than \(Self.maxPieces)") }
            var next: Int64 = 0
            for (index, piece) in pieces.enumerated() {
                guard piece.offset == next, piece.length > 0, Self.isHexDigest(piece.sha256) else {
                    throw .invalidManifest("piece \(index) (\(piece.name)) does not continue the bundle at byte \(next) with a positive length and a hex sha256")
                }
                // Compared against what is left rather than summed first: lengths near Int64.max would overflow.
                guard piece.length <= size - next else {
                    throw .invalidManifest("piece \(index) (\(piece.name)) of \(piece.length) bytes at byte \(next) runs past the bundle's \(size) bytes")
                }
                next += piece.length
            }
            guard next == size else { throw .invalidManifest("the pieces cover \(next) bytes, the bundle has \(size)") }
        }
    }

    static func isHexDigest(_ value: String) -> Bool {
        value.utf8.count == 64 && value.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }
}
