/// Why a federated step could not run.
public enum FederatedError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Bytes that are not a readable tensor file.
    case malformed(what: String, reason: String)
    /// A worker's update that does not fit the global adapter (tensors missing, extra, of other shapes, not finite).
    case unfit(reason: String)
    /// No usable update this round.
    case noUpdates
    /// Options that cannot work.
    case invalidOptions(String)

    public var description: String {
        switch self {
        case let .malformed(what, reason): return "\(what) is not a readable tensor file: \(reason)"
        case .unfit(let reason): return "the update does not fit the global adapter: \(reason)"
        case .noUpdates: return "no worker sent a usable update this round"
        case .invalidOptions(let reason): return reason
        }
    }
}
