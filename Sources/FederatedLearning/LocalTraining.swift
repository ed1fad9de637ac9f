import AdapterEngine
import AdapterTraining

/// One worker's part of a round: start from the global adapter (or, in the first round, the plan's seeded
/// initialisation), train on the worker's own examples, and return the tensors the aggregation needs, the examples
/// used and the held-out accuracy. The worker runs this; simulations run the same code.
public struct LocalTraining: Sendable {
    /// The frozen base model.
    public let model: BertModel
    /// The run's plan.
    public let plan: RoundPlan

    /// Local training over `model` by `plan`.
    public init(model: BertModel, plan: RoundPlan) {
        self.model = model
        self.plan = plan
    }

    /// The examples trained on and those held out for the local accuracy (a seeded split, the same every round).
    public func split(_ examples: [TrainingExample]) -> (train: [TrainingExample], heldOut: [TrainingExample]) {
        let count = examples.count >= 5 ? Int(plan.holdout * Double(examples.count)) : 0
        guard count > 0 else { return (examples, []) }
        var random = SeededRandom(seed: plan.seed ^ 0x5EED)
        let order = Array(examples.indices).shuffled(using: &random)
        let held = Set(order.prefix(count))
        return (examples.indices.filter { !held.contains($0) }.map { examples[$0] }, held.sorted().map { examples[$0] })
    }

    /// The tensors of the stored adapter at `directory` (PEFT's files), checked against the plan: the first round's
    /// start when the run continues a version.
    public func baseTensors(directory: String) throws(TrainingError) -> TensorSet {
        let adapter = try TrainableAdapter(directory: directory, model: model)
        let options: Trainer.Options
        do { options = try plan.trainerOptions(round: 0) } catch { throw .invalidOptions("\(error)") }
        guard adapter.labels == plan.labels, adapter.rank == plan.rank, adapter.alpha == plan.alpha, adapter.targets == LinearSlot.allCases.filter(options.targets.contains) else {
            throw .invalidOptions(
                "the stored version has labels \(adapter.labels), rank \(adapter.rank), alpha \(adapter.alpha), targets \(adapter.targets.map(\.path)); "
                    + "the run has labels \(plan.labels), rank \(plan.rank), alpha \(plan.alpha), targets \(plan.targets)")
        }
        var tensors = TensorSet()
        for parameter in adapter.parameters { tensors.tensors[parameter.name] = TensorSet.Entry(shape: parameter.shape, values: parameter.values) }
        return tensors
    }

    /// The adapter a round starts from: `global`, or without one the plan's seeded initialisation.
    public func startingAdapter(global: TensorSet?) throws(TrainingError) -> TrainableAdapter {
        let options: Trainer.Options
        do { options = try plan.trainerOptions(round: 0) } catch { throw .invalidOptions("\(error)") }
        guard let global else {
            return try TrainableAdapter(model: model, labels: plan.labels, rank: plan.rank, alpha: plan.alpha, targets: options.targets, seed: plan.seed)
        }
        return try TrainableAdapter(
            model: model, labels: plan.labels, rank: plan.rank, alpha: plan.alpha, targets: options.targets,
            tensors: global.tensors.mapValues(\.values))
    }

    /// Trains round `round` on `examples` from `global` (nil in the first round: then training starts from `start`,
    /// the worker's copy of the plan's base version, or the seeded initialisation, and every tensor is sent back, the
    /// frozen ones too, so the controller learns them). `progress`, `isCancelled` and `pause` are the trainer's.
    public func run(
        round: Int, global: TensorSet?, start: TensorSet? = nil, examples: [TrainingExample],
        progress: (Trainer.Progress) -> Void = { _ in }, isCancelled: () -> Bool = { false }, pause: @escaping () -> Void = {}
    ) throws(TrainingError) -> Outcome {
        let options: Trainer.Options
        do { options = try plan.trainerOptions(round: round) } catch { throw .invalidOptions("\(error)") }
        // A box may have seen labels the run does not learn: those examples sit this run out.
        let known = examples.filter { plan.labels.contains($0.label) }
        guard !known.isEmpty else { throw .invalidOptions("none of the \(examples.count) examples has one of the run's labels \(plan.labels)") }
        let (train, heldOut) = split(known)
        var adapter = try startingAdapter(global: global ?? start)
        let trainer = Trainer(model: model, options: options)
        let report = try trainer.train(&adapter, on: train, eval: heldOut, progress: progress, isCancelled: isCancelled, pause: pause)
        var tensors = TensorSet()
        for parameter in adapter.parameters where global == nil || plan.method.trains(parameter.name) {
            tensors.tensors[parameter.name] = TensorSet.Entry(shape: parameter.shape, values: parameter.values)
        }
        return Outcome(tensors: tensors, examples: train.count, heldOut: heldOut.count, skipped: examples.count - known.count, accuracy: report.evalAccuracy)
    }

    /// What a worker's round produced.
    public struct Outcome: Sendable {
        /// The tensors to send back.
        public var tensors: TensorSet
        /// Examples trained on and held out.
        public var examples: Int
        public var heldOut: Int
        /// Examples whose label the run does not learn.
        public var skipped: Int
        /// Accuracy on the held-out examples (nil with none).
        public var accuracy: Double?
    }
}
