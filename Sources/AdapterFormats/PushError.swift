import Foundation

/// Why an over-the-air push was refused.
public enum PushError: Error, CustomStringConvertible, Sendable, Equatable {
    case invalidManifest(String)
    case tooLarge(size: Int64, limit: Int64)
    case insufficientSpace(needed: Int64, available: Int64, directory: String)
    case unsigned
    case untrustedSignature(trustedKeys: Int)
    case notStarted(name: String, version: String)
    case chunkOutOfRange(index: Int, count: Int)
    case chunkLength(index: Int, got: Int, expected: Int)
    case incomplete(missing: Int, count: Int)
    case sizeMismatch(expected: Int64, actual: Int64)
    case digestMismatch(expected: String, actual: String)
    case malformedBundle(String)
    case io(path: String, reason: String)
    /// The disk holding the push's files filled up; what was stored is kept.
    case diskFull(directory: String)
    /// A delta push's piece the worker held at its begin is gone (its adapter was removed since).
    case pieceGone(name: String)

    public var description: String {
        switch self {
        case .invalidManifest(let reason):
            return "push manifest refused: \(reason)"
        case let .tooLarge(size, limit):
            return "push of \(size) bytes exceeds this worker's limit of \(limit) bytes (security.maxPushBytes)"
        case let .insufficientSpace(needed, available, directory):
            return "not enough disk space under \(directory): the push needs \(needed) bytes, \(available) are free"
        case .unsigned:
            return "this worker accepts only signed pushes (security.requireSigned); sign with adapterctl adapters push --sign KEY"
        case .untrustedSignature(let count):
            return count == 0
                ? "the push is signed but this worker trusts no keys; add the signer's public key to security.trustedKeys"
                : "the push signature does not verify against any of the \(count) trusted keys"
        case let .notStarted(name, version):
            return "no push of adapter '\(name)' \(version) is in progress; send a begin step first"
        case let .chunkOutOfRange(index, count):
            return "chunk \(index) is out of range: the push has chunks 0..<\(count)"
        case let .chunkLength(index, got, expected):
            return "chunk \(index) holds \(got) bytes, expected \(expected) (truncated or wrong chunk size)"
        case let .incomplete(missing, count):
            return "the push is missing \(missing) of \(count) chunks; send them (begin again to list them) before committing"
        case let .sizeMismatch(expected, actual):
            return "the pushed payload is \(actual) bytes, its manifest says \(expected); the push was discarded"
        case let .digestMismatch(expected, actual):
            return "the pushed payload hashes to sha256 \(actual.prefix(16))…, its manifest says \(expected.prefix(16))…; the push was discarded"
        case .malformedBundle(let reason):
            return "the pushed payload is not an adapter bundle: \(reason); the push was discarded"
        case let .io(path, reason):
            return "push storage: \(path): \(reason)"
        case .pieceGone(let name):
            return "the worker no longer holds '\(name)', which this delta push relied on; the push was discarded: begin it again"
        case .diskFull(let directory):
            return "the disk holding \(directory) is full: the push keeps what it stored; free space there and send the rest again"
        }
    }

    /// Whether the push was thrown away (the sender must start over): its payload or signature is bad. A push
    /// that failed for lack of space or any other local reason keeps what it stored.
    public var discardsPush: Bool {
        switch self {
        case .sizeMismatch, .digestMismatch, .malformedBundle, .unsigned, .untrustedSignature, .pieceGone: return true
        default: return false
        }
    }

    /// What a failed write of `path` means for a push: a full disk (named by the directory), or an I/O error.
    public static func writeFailure(errno code: Int32, path: String) -> PushError {
        if code == ENOSPC || code == EDQUOT {
            return .diskFull(directory: (path as NSString).deletingLastPathComponent)
        }
        return .io(path: path, reason: String(cString: strerror(code)))
    }

    /// `writeFailure(errno:path:)` for an error thrown by Foundation.
    public static func writeFailure(_ error: any Error, path: String) -> PushError {
        if let posix = FileSystemFailure.posixCode(of: error) { return writeFailure(errno: posix, path: path) }
        if FileSystemFailure.isOutOfSpace(error) {
            return .diskFull(directory: (path as NSString).deletingLastPathComponent)
        }
        return .io(path: path, reason: error.localizedDescription)
    }
}
