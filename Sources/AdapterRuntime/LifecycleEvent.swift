import AdapterFormats

/// A change the registry made to what a worker holds or serves: a version loaded, refused, activated, rolled back
/// (by a request or by the rollout guard) or unloaded. Every such change is reported by the registry that made it,
/// once, in order; the worker maps it to the wire in one place.
public struct LifecycleEvent: Sendable, Equatable {
    /// What happened.
    public let action: LifecycleAction
    public let name: String
    public let version: String
    /// Who asked for it (the request's actor, "guard", "restore").
    public let actor: String
    /// Why, or where the version came from.
    public let reason: String

    /// An event about (name, version).
    public init(_ action: LifecycleAction, name: String, version: String, actor: String, reason: String) {
        self.action = action
        self.name = name
        self.version = version
        self.actor = actor
        self.reason = reason
    }
}
