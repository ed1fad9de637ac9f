/// Why an input router could not be fitted, read or used.
public enum RouterError: Error, CustomStringConvertible, Sendable, Equatable {
    case unreadable(path: String, reason: String)
    case invalidExample(path: String, line: Int, reason: String)
    case tooFewExamples(String)
    case invalidRouter(path: String, reason: String)
    case wrongBaseModel(router: String, worker: String)

    public var description: String {
        switch self {
        case let .unreadable(path, reason): return "cannot read \(path): \(reason)"
        case let .invalidExample(path, line, reason): return "\(path) line \(line): \(reason)"
        case let .tooFewExamples(reason): return "cannot fit a router: \(reason)"
        case let .invalidRouter(path, reason): return "'\(path)' is not a valid input router: \(reason)"
        case let .wrongBaseModel(router, worker):
            return "the router was fitted on the base model with sha256 \(router.prefix(16))…, this model is \(worker.prefix(16))…"
        }
    }
}
