/// Why the adapter store refused an operation.
public enum StoreError: Error, CustomStringConvertible, Sendable, Equatable {
    case invalidName(field: String, value: String, rule: String)
    case notAnAdapter(directory: String, missing: String)
    case unreadable(path: String, reason: String)
    case notRegularFile(path: String)
    /// The disk holding the store is full (the source was read fine).
    case noSpace(directory: String)
    /// The store could not be written for another reason (permissions, a read-only disk).
    case unwritable(directory: String, reason: String)
    case notFound(name: String, version: String?)
    case conflict(name: String, version: String, existingSHA256: String)
    case invalidTransition(name: String, version: String, from: AdapterState, to: AdapterState)
    case nothingToRollBackTo(name: String)
    case database(String)
    /// A bounded store (feedback, say) is full.
    case limit(what: String, limit: Int)

    public var description: String {
        switch self {
        case let .invalidName(field, value, rule):
            return "\(field) '\(value)' is invalid: \(rule)"
        case let .notAnAdapter(directory, missing):
            return missing.hasPrefix("router")
                ? "'\(directory)' is not an input router: \(missing) is missing"
                : "'\(directory)' is not a PEFT adapter: \(missing) is missing"
        case let .notRegularFile(path):
            return "\(path) is not a regular file (symbolic links and special files are refused)"
        case let .unreadable(path, reason):
            return "cannot read \(path): \(reason)"
        case let .noSpace(directory):
            return "no space left on the disk holding \(directory) (adapterd's data directory): free space there or move dataDir"
        case let .unwritable(directory, reason):
            return "cannot write to \(directory) (adapterd's data directory): \(reason)"
        case let .notFound(name, version?):
            return "adapter '\(name)' has no version '\(version)'"
        case let .notFound(name, nil):
            return "no adapter '\(name)' is registered"
        case let .conflict(name, version, sha):
            return "adapter '\(name)' \(version) is already registered with other contents (sha256 \(sha.prefix(12))…); use a new version"
        case let .invalidTransition(name, version, from, to):
            return "adapter '\(name)' \(version) is \(from.rawValue) and cannot become \(to.rawValue)"
        case let .nothingToRollBackTo(name):
            return "adapter '\(name)' has no previously active version to roll back to"
        case let .database(reason):
            return "registry database: \(reason)"
        case let .limit(what, limit):
            return "this worker keeps at most \(limit) \(what); delete some or raise the limit"
        }
    }
}
