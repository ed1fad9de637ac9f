import CEngineKernels

/// Runs the frozen base model with any mix of LoRA adapters: tokenise, one batched forward pass, heads per row.
///
/// The engine holds only immutable state, so any number of tasks may call it at once.
public struct InferenceEngine: Sendable {
    /// The base model.
    public let model: BertModel
    /// The base model's layers prepared for this engine's precision and kernel path.
    public let plan: ExecutionPlan

    /// INT8 only: a classification row whose INT8 top-two logit margin is below this is run again in FP32 and
    /// answered from that pass, so that INT8 gives FP32's label whenever its logits are within half the margin of
    /// FP32's (0: never re-run).
    public let labelCheckMargin: Float
    /// INT8 with a label check: the FP32 plan near-tie rows are re-run with (it reads the model's weights in place).
    private let exact: ExecutionPlan?
    private let rechecks = RecheckCounter()

    /// The default `labelCheckMargin`: twice the largest INT8 logit error the tests allow (0.25; the reference
    /// adapters' largest is 0.09), so a label can only differ from FP32's where INT8 is off by more than that.
    public static let defaultLabelCheckMargin: Float = 0.5

    /// The precision of the base linear layers.
    public var precision: Precision { plan.precision }
    /// The kernel path the engine runs.
    public var path: KernelPath { plan.path }

    /// Wraps a loaded base model, preparing its layers for `precision` with the kernels of `path` (at most the
    /// CPU's; the detected best by default).
    /// In INT8, classification rows with a top-two margin below `labelCheckMargin` are answered by an FP32 pass.
    public init(
        model: BertModel, precision: Precision = .fp32, path: KernelPath = .detected,
        labelCheckMargin: Float = InferenceEngine.defaultLabelCheckMargin
    ) {
        self.model = model
        let calibration = precision == .int8 ? Smoothing.calibrationTexts.map { model.tokenizer.encode($0).ids } : []
        plan = ExecutionPlan(weights: model.weights, config: model.config, precision: precision, path: path, calibration: calibration)
        let checks = precision == .int8 && labelCheckMargin > 0
        self.labelCheckMargin = checks ? labelCheckMargin : 0
        exact = checks ? ExecutionPlan(referencing: model.weights, path: path) : nil
    }

    /// Loads the base model from a Hugging Face directory and prepares it for `precision`.
    public init(
        modelDirectory: String, precision: Precision = .fp32, path: KernelPath = .detected,
        labelCheckMargin: Float = InferenceEngine.defaultLabelCheckMargin
    ) throws(ModelError) {
        self.init(model: try BertModel(directory: modelDirectory), precision: precision, path: path, labelCheckMargin: labelCheckMargin)
    }

    /// Rows answered by the FP32 re-check (`labelCheckMargin`) since the engine was made.
    public var labelRechecks: Int { rechecks.value }

    /// Tokenises one text.
    public func encode(_ text: String) -> Encoding {
        model.tokenizer.encode(text)
    }

    /// Runs `texts`, each with its own adapter (nil: sentence embedding from the base model), in one batch.
    public func run(_ texts: [(text: String, adapter: LoRAAdapter?)]) -> [InferenceResult] {
        let encodings = texts.map { encode($0.text) }
        // The tokenizer only emits in-vocabulary ids and at most maxLength of them.
        let inputs = zip(encodings, texts).map { EncodedInput(ids: $0.ids, adapter: $1.adapter) }
        let outputs = pass(inputs)
        return zip(encodings, outputs).map { InferenceResult(ids: $0.ids, truncated: $0.truncated, output: $1) }
    }

    /// Runs `texts` all with the same adapter.
    public func run(_ texts: [String], adapter: LoRAAdapter?) -> [InferenceResult] {
        run(texts.map { ($0, adapter) })
    }

    /// Runs already tokenised rows, after checking every id and length against the model.
    public func run(encoded inputs: [EncodedInput]) throws(InferenceError) -> [InferenceOutput] {
        try check(inputs)
        return pass(inputs)
    }

    /// Runs already tokenised rows on the calling thread alone, without the OpenMP team: for background work (a new
    /// adapter's smoke inference on an idle-priority thread) that must leave the cores to the requests being served.
    /// `pause` is called before each layer and may block (to wait for a gap between requests).
    public func runOnCallingThread(encoded inputs: [EncodedInput], pause: @escaping () -> Void = {}) throws(InferenceError) -> [InferenceOutput] {
        try check(inputs)
        // The team size is per thread in OpenMP: this changes nothing for the engine thread's passes.
        let threads = adk_begin_sequential()
        defer { adk_end_sequential(threads) }
        return pass(inputs, pause: pause)
    }

    /// One forward pass over `inputs`; in INT8, near-tie classification rows again in FP32.
    private func pass(_ inputs: [EncodedInput], pause: @escaping () -> Void = {}) -> [InferenceOutput] {
        var forward = ForwardPass(weights: model.weights, config: model.config, plan: plan)
        forward.pause = pause
        var outputs = forward.run(inputs)
        guard let exact else { return outputs }
        let unsure = outputs.indices.filter { (outputs[$0].topTwoMargin ?? .infinity) < labelCheckMargin }
        guard !unsure.isEmpty else { return outputs }
        var recheck = ForwardPass(weights: model.weights, config: model.config, plan: exact)
        recheck.pause = pause
        for (index, output) in zip(unsure, recheck.run(unsure.map { inputs[$0] })) { outputs[index] = output }
        rechecks.add(unsure.count)
        return outputs
    }

    private func check(_ inputs: [EncodedInput]) throws(InferenceError) {
        for (index, input) in inputs.enumerated() {
            guard !input.ids.isEmpty, input.ids.count <= model.config.maxPositionEmbeddings else {
                throw .invalidLength(row: index, length: input.ids.count, maximum: model.config.maxPositionEmbeddings)
            }
            if let bad = input.ids.first(where: { $0 < 0 || Int($0) >= model.config.vocabSize }) {
                throw .invalidTokenID(row: index, id: bad, vocabularySize: model.config.vocabSize)
            }
        }
    }

    /// The mean of each row's hidden states after the embeddings and the first `layers` layers of the base model
    /// (0: the embedding output), not normalised: the features input routers classify. Costs about
    /// `layers / numHiddenLayers` of a full pass.
    public func features(encoded rows: [[Int32]], layers: Int) throws(InferenceError) -> [[Float]] {
        let inputs = rows.map { EncodedInput(ids: $0, adapter: nil) }
        try check(inputs)
        let depth = min(max(layers, 0), model.config.numHiddenLayers)
        return ForwardPass(weights: model.weights, config: model.config, plan: plan).run(inputs, depth: depth).map { output in
            if case .embedding(let values) = output { return values }
            return []
        }
    }
}

/// Why a batch of token ids was refused.
public enum InferenceError: Error, CustomStringConvertible, Sendable {
    case invalidLength(row: Int, length: Int, maximum: Int)
    case invalidTokenID(row: Int, id: Int32, vocabularySize: Int)

    public var description: String {
        switch self {
        case let .invalidLength(row, length, maximum):
            return "row \(row): \(length) token ids; a sequence needs 1 to \(maximum)"
        case let .invalidTokenID(row, id, size):
            return "row \(row): token id \(id) is outside the vocabulary (0..<\(size))"
        }
    }
}
