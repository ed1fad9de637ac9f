import AdapterFormats

/// Why the adapter registry refused an operation. The worker turns these into RPC statuses at its edge.
public enum RegistryError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The store or its SQLite file refused (names, conflicts, transitions, I/O).
    case store(StoreError)
    /// No such adapter, or no such version of it, is loaded (`version` nil: the name itself).
    case notLoaded(name: String, version: String?)
    /// A LoadAdapter path that is not a directory.
    case noDirectory(name: String, version: String, path: String)
    /// The adapter failed validation or its smoke inference and was recorded as failed.
    case refused(name: String, version: String, reason: String)
    /// A route's topic filter is malformed.
    case invalidRouteTopic(topic: String, problem: String)
    /// A route names an adapter or router that is not loaded.
    case unknownReference(kind: String, name: String)
    /// Traffic splits need non-negative weights with a positive sum.
    case invalidSplits
    /// A split names a version that is not loaded.
    case splitToUnloaded(name: String, version: String)
    /// The engine stopped before a smoke inference could run.
    case engineStopping
    /// The name belongs to an artifact of another kind (an adapter where a router is needed, or the reverse).
    case notKind(name: String, kind: ArtifactKind)
    /// A load, push or training would add a version of another kind to a name that holds `holds` versions.
    case kindTaken(name: String, holds: ArtifactKind, offered: ArtifactKind)
    /// A route's minimum confidence outside 0…1.
    case invalidConfidence(Double)
    /// A route's blend that cannot serve (too few or too many parts, a name twice, a weight not finite, beside an
    /// adapter or router).
    case invalidRouteBlend(String)
    /// A bounded collection is full.
    case limit(what: String, limit: Int)

    /// Whether it refuses the adapter offered (it fails validation or its smoke inference, is not an adapter, or
    /// is of another kind than its name holds), as opposed to a limit, a conflict or a fault of the worker.
    public var refusesAdapter: Bool {
        switch self {
        case .refused, .kindTaken, .store(.notAnAdapter), .store(.notRegularFile): return true
        default: return false
        }
    }

    public var description: String {
        switch self {
        case let .store(error):
            return error.description
        case let .notLoaded(name, nil):
            return "no adapter '\(name)' is loaded"
        case let .notLoaded(name, version?):
            return "adapter '\(name)' has no version '\(version)' loaded"
        case let .noDirectory(name, version, path):
            return "adapter '\(name)' \(version): no directory at '\(path)'"
        case let .refused(name, version, reason):
            return "adapter '\(name)' \(version) refused: \(reason)"
        case let .invalidRouteTopic(topic, problem):
            return "route topic '\(topic)': \(problem)"
        case let .unknownReference(kind, name):
            return "no \(kind) '\(name)' is loaded; load it before routing to it"
        case .invalidSplits:
            return "splits must be non-negative weights with a positive sum"
        case let .splitToUnloaded(name, version):
            return "adapter '\(name)' has no version '\(version)' loaded; load it before splitting traffic to it"
        case .engineStopping:
            return "the engine is stopping; the smoke inference did not run"
        case let .notKind(name, kind):
            return kind == .router
                ? "'\(name)' is an adapter, not an input router"
                : "'\(name)' is an input router, not an adapter; name an adapter, or route through the router"
        case let .kindTaken(name, holds, offered):
            return "'\(name)' holds \(holds == .router ? "input router" : "adapter") versions, so it cannot take \(offered == .router ? "an input router" : "an adapter"): a name holds one kind; use another name"
        case .invalidRouteBlend(let reason):
            return "route blend: \(reason)"
        case let .limit(what, limit):
            return "this worker keeps at most \(limit) \(what); delete some first"
        case let .invalidConfidence(value):
            return "min_confidence \(value) is outside 0…1"
        }
    }
}
