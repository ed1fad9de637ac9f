import AdapterEngine
import Foundation

/// Trains a LoRA adapter and its classifier on labelled texts: mini-batches in a seeded order, AdamW with a linear
/// schedule and warm-up, and an optional held-out accuracy at the end.
public struct Trainer: Sendable {
    /// What to train and how.
    public struct Options: Sendable, Equatable {
        public var rank = 8
        public var alpha: Double = 16
        public var targets: [LinearSlot] = [.query, .value]
        public var epochs = 10
        public var batchSize = 16
        /// Fraction of all steps spent warming the learning rate up.
        public var warmupRatio = 0.1
        public var seed: UInt64 = 0
        public var optimizer = AdamW.Options()
        /// Largest memory the run may take for activations and optimiser state (0: no limit).
        public var memoryBudgetBytes = 0
        /// Keep every LoRA A as it starts and train B and the head only (FFA-LoRA: federated averages of B are
        /// then the exact average of the products B·A).
        public var freezeLoRAA = false

        /// The defaults of PEFT's LoRA examples (r 8, alpha 16, query and value, AdamW lr 1e-3).
        public init() {}

        /// Largest alpha accepted: far beyond any published LoRA recipe, and small enough that `alpha / rank`
        /// stays a finite `Float` scaling.
        public static let maxAlpha: Double = 65_536

        /// Checks every option up front, so a run never starts with a value that can only fail (or poison the
        /// weights with NaN) later.
        public func validate() throws(TrainingError) {
            guard (1...256).contains(rank) else { throw .invalidOptions("rank must be 1–256, got \(rank)") }
            guard alpha.isFinite, alpha > 0, alpha <= Self.maxAlpha else {
                throw .invalidOptions("alpha must be a finite number in (0, \(Int(Self.maxAlpha))], got \(alpha)")
            }
            guard (1...1000).contains(epochs) else { throw .invalidOptions("epochs must be 1–1000, got \(epochs)") }
            guard (1...1024).contains(batchSize) else { throw .invalidOptions("batch size must be 1–1024, got \(batchSize)") }
            let learningRate = optimizer.learningRate
            guard learningRate.isFinite, learningRate > 0, learningRate < 1 else {
                throw .invalidOptions("the learning rate must be in (0, 1), got \(learningRate)")
            }
            guard warmupRatio.isFinite, (0...1).contains(warmupRatio) else {
                throw .invalidOptions("the warm-up ratio must be in [0, 1], got \(warmupRatio)")
            }
            guard !targets.isEmpty else { throw .invalidOptions("no target modules") }
        }
    }

    /// Where a run stands, after each step.
    public struct Progress: Sendable {
        public var epoch: Int
        public var step: Int
        public var totalSteps: Int
        /// Mean loss of this step's batch.
        public var loss: Float
    }

    /// What a finished run reports.
    public struct Report: Sendable {
        public var examples: Int
        public var epochs: Int
        public var steps: Int
        /// Mean training loss of the last epoch.
        public var finalLoss: Float
        /// Accuracy on the held-out examples, when given.
        public var evalAccuracy: Double?
        /// Seconds per epoch (mean).
        public var secondsPerEpoch: Double
        /// Peak bytes of activations, gradients and optimiser state, as measured (the frozen base model, mapped
        /// and shared with serving, is not counted).
        public var peakBytes: Int
        /// What the run was estimated to need before it started (checked against the memory budget).
        public var estimatedBytes: Int
    }

    /// The frozen base model.
    public let model: BertModel
    /// What to train and how.
    public let options: Options

    /// A trainer over the frozen `model`.
    public init(model: BertModel, options: Options) {
        self.model = model
        self.options = options
    }

    /// The labels of `examples`, in order of first appearance.
    public static func labels(of examples: [TrainingExample]) -> [String] {
        var seen: [String] = []
        for example in examples where !seen.contains(example.label) { seen.append(example.label) }
        return seen
    }

    /// Trains a new adapter on `examples`; `eval` examples give the held-out accuracy. `progress` is called after
    /// every step; `isCancelled` is checked between steps; `pause` is called between layers (it may block, to let
    /// other work have the CPU).
    public func train(
        _ examples: [TrainingExample], eval: [TrainingExample] = [], labels given: [String]? = nil,
        progress: (Progress) -> Void = { _ in }, isCancelled: () -> Bool = { false }, pause: @escaping () -> Void = {}
    ) throws(TrainingError) -> (adapter: TrainableAdapter, report: Report) {
        let labels = given ?? Self.labels(of: examples + eval)
        var adapter = try TrainableAdapter(model: model, labels: labels, rank: options.rank, alpha: options.alpha, targets: options.targets, seed: options.seed)
        let report = try train(&adapter, on: examples, eval: eval, progress: progress, isCancelled: isCancelled, pause: pause)
        return (adapter, report)
    }

    /// Trains `adapter` further on `examples`.
    public func train(
        _ adapter: inout TrainableAdapter, on examples: [TrainingExample], eval: [TrainingExample] = [],
        progress: (Progress) -> Void = { _ in }, isCancelled: () -> Bool = { false }, pause: @escaping () -> Void = {}
    ) throws(TrainingError) -> Report {
        guard !examples.isEmpty else { throw .invalidOptions("no training examples") }
        guard options.epochs >= 1, options.batchSize >= 1 else { throw .invalidOptions("epochs and batch size must be at least 1") }
        let encoded = try encode(examples, labels: adapter.labels)
        let held = try encode(eval, labels: adapter.labels)
        let batchesPerEpoch = (encoded.count + options.batchSize - 1) / options.batchSize
        let totalSteps = batchesPerEpoch * options.epochs
        var optimizerOptions = options.optimizer
        optimizerOptions.totalSteps = totalSteps
        optimizerOptions.warmupSteps = Int((options.warmupRatio * Double(totalSteps)).rounded(.up))
        var optimizer = AdamW(parameters: adapter.parameters, options: optimizerOptions)
        let frozen = options.freezeLoRAA ? Set(adapter.parameters.indices.filter { adapter.parameters[$0].isLoRAA }) : []

        // The memory a step takes is set by its longest batch: refuse up front what would not fit.
        let peak = estimatedPeakBytes(lengths: encoded.map { $0.ids.count }, parameterBytes: adapter.byteSize, slots: adapter.targets.count, rank: adapter.rank)
        if options.memoryBudgetBytes > 0, peak > options.memoryBudgetBytes {
            throw .tooLarge(neededBytes: peak, budgetBytes: options.memoryBudgetBytes)
        }

        var measuredPeak = 0
        var random = SeededRandom(seed: options.seed &+ 1)
        var order = Array(encoded.indices)
        var step = 0
        var lastEpochLoss: Float = 0
        let started = ContinuousClock.now
        for epoch in 0..<options.epochs {
            order.shuffle(using: &random)
            var epochLoss: Double = 0
            for batchStart in stride(from: 0, to: order.count, by: options.batchSize) {
                if isCancelled() { throw .cancelled }
                let batch = order[batchStart..<min(batchStart + options.batchSize, order.count)].map { encoded[$0] }
                let result = TrainingPass(model: model, adapter: adapter, pause: pause).run(batch)
                // A diverging run would otherwise stage an adapter whose every output is NaN.
                guard result.loss.isFinite else { throw .diverged(step: step + 1, loss: result.loss) }
                optimizer.apply(result.gradients, to: &adapter.parameters, frozen: frozen)
                step += 1
                measuredPeak = max(measuredPeak, result.peakBytes)
                epochLoss += Double(result.loss) * Double(batch.count)
                progress(Progress(epoch: epoch, step: step, totalSteps: totalSteps, loss: result.loss))
            }
            lastEpochLoss = Float(epochLoss / Double(encoded.count))
        }
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        var accuracy: Double?
        if !held.isEmpty { accuracy = Self.accuracy(of: adapter, on: held, model: model, batchSize: options.batchSize) }
        return Report(
            examples: encoded.count, epochs: options.epochs, steps: step, finalLoss: lastEpochLoss, evalAccuracy: accuracy,
            secondsPerEpoch: seconds / Double(options.epochs),
            // Parameters, their gradients and AdamW's two moments live through the run.
            peakBytes: measuredPeak + 4 * adapter.byteSize, estimatedBytes: peak)
    }

    /// The peak memory (activations, gradients, optimiser state) training on `examples` takes, in bytes.
    public func estimatedPeakBytes(for examples: [TrainingExample], labels: Int) -> Int {
        let hidden = model.config.hiddenSize
        let loraBytes = model.weights.layers.reduce(0) { total, layer in
            total + options.targets.reduce(0) { $0 + 4 * options.rank * (layer[$1].inFeatures + layer[$1].outFeatures) }
        }
        return estimatedPeakBytes(
            lengths: examples.map { model.tokenizer.encode($0.text).ids.count }, parameterBytes: loraBytes + 4 * labels * (hidden + 1),
            slots: options.targets.count, rank: options.rank)
    }

    private func estimatedPeakBytes(lengths: [Int], parameterBytes: Int, slots: Int, rank: Int) -> Int {
        let longest = lengths.sorted(by: >).prefix(options.batchSize)
        // Parameters, their gradients and AdamW's two moments.
        return TrainingPass.activationBytes(lengths: Array(longest), config: model.config, rank: rank, slots: slots) + 4 * parameterBytes
    }

    /// The share of `examples` whose highest logit is their label.
    static func accuracy(of adapter: TrainableAdapter, on examples: [(ids: [Int32], label: Int)], model: BertModel, batchSize: Int) -> Double {
        var correct = 0
        for start in stride(from: 0, to: examples.count, by: batchSize) {
            let batch = Array(examples[start..<min(start + batchSize, examples.count)])
            let result = TrainingPass(model: model, adapter: adapter).run(batch, backward: false)
            for (logits, item) in zip(result.logits, batch) where logits.indices.max(by: { logits[$0] < logits[$1] }) == item.label {
                correct += 1
            }
        }
        return Double(correct) / Double(max(examples.count, 1))
    }

    /// The mean loss, the logits and the gradient of every trainable tensor for one batch of `examples`, without
    /// changing `adapter` (what a training step computes before the optimiser).
    public func gradients(of adapter: TrainableAdapter, on examples: [TrainingExample]) throws(TrainingError) -> (loss: Float, logits: [[Float]], gradients: [[Float]]) {
        let result = TrainingPass(model: model, adapter: adapter).run(try encode(examples, labels: adapter.labels))
        return (result.loss, result.logits, result.gradients)
    }

    /// Held-out accuracy of `adapter` on `examples`.
    public func accuracy(of adapter: TrainableAdapter, on examples: [TrainingExample]) throws(TrainingError) -> Double {
        Self.accuracy(of: adapter, on: try encode(examples, labels: adapter.labels), model: model, batchSize: options.batchSize)
    }

    private func encode(_ examples: [TrainingExample], labels: [String]) throws(TrainingError) -> [(ids: [Int32], label: Int)] {
        var encoded: [(ids: [Int32], label: Int)] = []
        for example in examples {
            guard let label = labels.firstIndex(of: example.label) else { throw .unknownLabel(label: example.label, labels: labels) }
            encoded.append((model.tokenizer.encode(example.text).ids, label))
        }
        return encoded
    }
}
