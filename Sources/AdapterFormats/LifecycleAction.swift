/// What happened to an adapter version: the events the worker publishes and the actions its audit trail records,
/// one vocabulary for both. The raw values are what the wire and the registry carry.
public enum LifecycleAction: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    /// Registered (by a load, a push or a training); the name's first version is also activated.
    case loaded
    /// Failed validation or its smoke inference; recorded as failed.
    case refused
    /// Made the version that serves the name.
    case activated
    /// Returned to the previously active version (by a request, or the rollout guard on a canary).
    case rolledBack = "rolled back"
    /// Removed from the registry.
    case unloaded
    /// A training's progress (events only).
    case training
    /// A training finished and staged its version.
    case trained
    /// A training stopped on an error, its time limit or a diverging loss; nothing was staged.
    case trainingFailed = "training failed"
    /// A training was cancelled; nothing was staged.
    case trainingCancelled = "training cancelled"

    /// Whether it changes which versions a worker holds or serves (its retained status follows these).
    public var changesHoldings: Bool { [.loaded, .activated, .rolledBack, .unloaded].contains(self) }

    /// The raw value: how the wire, the registry and people spell it.
    public var description: String { rawValue }

    /// Whether it ends a training.
    public var endsTraining: Bool { [.trained, .trainingFailed, .trainingCancelled].contains(self) }
}
