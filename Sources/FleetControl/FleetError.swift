/// Why a fleet operation could not run.
public enum FleetError: Error, CustomStringConvertible, Sendable, Equatable {
    case state(path: String, reason: String)
    case claimed(pid: Int)
    case noWorkers(selector: String)
    case invalidSelector(String)
    case invalidPolicy(String)
    case noRollout(path: String)

    public var description: String {
        switch self {
        case let .state(path, reason): return "rollout state \(path): \(reason)"
        case .claimed(let pid): return "another controller (process \(pid)) is running this rollout; wait for it, or stop it first"
        case .noWorkers(let selector): return "no online worker matches \(selector.isEmpty ? "(all)" : selector)"
        case .invalidSelector(let reason): return "--select: \(reason)"
        case .invalidPolicy(let reason): return "rollout policy: \(reason)"
        case .noRollout(let path): return "\(path) holds no rollout"
        }
    }
}
