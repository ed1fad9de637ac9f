/// Why a handler refused a request before reaching the adapter lifecycle: a bad or missing field, a worker
/// setting that forbids it, an expired request.
public enum HandlerError: Error, CustomStringConvertible, Sendable, Equatable {
    case missingField(String)
    case invalidField(field: String, value: String, problem: String)
    case expiredWaiting
    case missingPushStep
    case outsideAdapterRoots(roots: [String])
    case trainingDisabled
    case missingFederatedStep

    public var description: String {
        switch self {
        case .missingField(let field): return "field '\(field)' is required"
        case let .invalidField(field, value, problem): return "\(field) '\(value)' is invalid: \(problem)"
        case .expiredWaiting: return "the request expired while it waited for the engine"
        case .missingPushStep: return "a push request needs one of 'begin', 'chunk', 'commit' or 'abort'"
        case .trainingDisabled: return "training is disabled on this worker (training.enabled is false)"
        case .missingFederatedStep: return "a federated round request needs one of 'offer', 'global_chunk', 'train' or 'collect'"
        case let .outsideAdapterRoots(roots):
            return "LoadAdapter reads adapters only under \(roots.joined(separator: ", ")); push the adapter, or add its directory with --adapter-root (security.adapterRoots)"
        }
    }
}
