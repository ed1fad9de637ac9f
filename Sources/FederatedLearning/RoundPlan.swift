import AdapterEngine
import AdapterTraining

/// What every worker of a federated run trains the same way: the adapter's shape, the labels, and the local
/// training's settings. Sent with each round's offer.
public struct RoundPlan: Sendable, Equatable, Codable {
    /// The classifier's labels, in output order.
    public var labels: [String]
    public var rank = 8
    public var alpha: Double = 16
    /// Adapted modules (`LinearSlot` module names).
    public var targets: [String] = ["query", "value"]
    /// Epochs over the worker's examples each round.
    public var localEpochs = 5
    public var learningRate: Float = 5e-3
    public var batchSize = 16
    /// Seeds the first global adapter (identical on every worker) and each round's batch order.
    public var seed: UInt64 = 0
    public var method: AggregationMethod = .productSVD
    /// Share of a worker's examples held out for its local accuracy (none when it holds fewer than 5).
    public var holdout = 0.1
    /// The version every worker starts the first round from (its own stored copy, the same files on every worker);
    /// nil: the seeded initialisation.
    public var baseVersion: String?

    /// A plan for a classifier over `labels` with the defaults.
    public init(labels: [String]) {
        self.labels = labels
    }

    /// The adapted slots, or the first name that is not one.
    public func slots() throws(FederatedError) -> [LinearSlot] {
        try targets.map { name throws(FederatedError) in
            guard let slot = LinearSlot(moduleName: name) else {
                throw .invalidOptions("target '\(name)' is not one of query, key, value, attention.output.dense, intermediate.dense, output.dense")
            }
            return slot
        }
    }

    /// The trainer's options for round `round`.
    public func trainerOptions(round: Int) throws(FederatedError) -> Trainer.Options {
        var options = Trainer.Options()
        options.rank = rank
        options.alpha = alpha
        options.targets = try slots()
        options.epochs = localEpochs
        options.batchSize = batchSize
        options.optimizer.learningRate = learningRate
        options.seed = seed &+ UInt64(max(round, 0))
        options.freezeLoRAA = method.freezesLoRAA
        do {
            try options.validate()
        } catch {
            throw .invalidOptions("\(error)")
        }
        guard labels.count >= 2, Set(labels).count == labels.count else {
            throw .invalidOptions("a federated classifier needs at least 2 distinct labels, got \(labels)")
        }
        guard holdout.isFinite, (0..<1).contains(holdout) else { throw .invalidOptions("the held-out share must be in [0, 1), got \(holdout)") }
        return options
    }
}
