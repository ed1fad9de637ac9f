import CEngineKernels

/// Runs the frozen base model with any mix of LoRA adapters: tokenise, one batched forward pass, heads per row.
///
/// The engine holds only immutable state, so any number of tasks may call it at once.
public struct InferenceEngine: Sendable {
    /// The base model.
    public let model: BertModel
    /// The base model's layers prepared for this engine's precision and kernel path.
    public let plan: ExecutionPlan

    /// INT8 and BF16 engines: a classification row whose logits lie closer to a decision than this many times the
    /// adapter's own calibrated error in that precision is answered by a more exact pass (`LabelCheck`; 0: never).
    public let labelCheckFactor: Float
    /// INT8 or BF16 with a label check: the more exact layers and what the check has measured.
    let labelCheck: LabelCheck?
    let rechecks = RecheckCounter()
    /// The memory adapters merged for uniform batches may take (`prepareMerged`); nil: none are merged.
    public let mergeBudget: MergeBudget?

    /// The default `labelCheckFactor`. On the reference adapters, the routing texts and the benchmark's synthetic
    /// inputs, INT8's error never exceeded 2.2 times the error measured on the calibration texts
    /// (Benchmarks/README.md, "INT8 label check").
    public static let defaultLabelCheckFactor: Float = 4

    /// The precision of the base linear layers.
    public var precision: Precision { plan.precision }
    /// The kernel path the engine runs.
    public var path: KernelPath { plan.path }

    /// Wraps a loaded base model, preparing its layers for `precision` with the kernels of `path` (at most the
    /// CPU's; the detected best by default). BF16 needs a path with BF16 dot products (`KernelPath.hasBF16`).
    /// In INT8 or BF16 with a `labelCheckFactor`, the engine also holds more exact layers (BF16, where the path has it,
    /// and FP32), and classification rows near a decision are answered by them (`LabelCheck`). `mergeBytes` is the
    /// memory `prepareMerged` may spend on adapters merged into copies of their layers (0: none).
    public init(
        model: BertModel, precision: Precision = .fp32, path: KernelPath = .detected,
        labelCheckFactor: Float = InferenceEngine.defaultLabelCheckFactor, mergeBytes: Int = 0
    ) {
        precondition(precision != .bf16 || Self.runsBF16(path: path), "BF16 needs a kernel path with BF16 dot products (KernelPath.hasBF16)")
        self.model = model
        mergeBudget = mergeBytes > 0 ? MergeBudget(limit: mergeBytes) : nil
        let calibration = precision != .fp32 ? Smoothing.calibrationTexts.map { model.tokenizer.encode($0).ids } : []
        let checks = precision != .fp32 && labelCheckFactor > 0
        // The FP32 layers INT8's smoothing is calibrated on are the ones its near-decision rows end on.
        let exact = checks ? ExecutionPlan(weights: model.weights, config: model.config, precision: .fp32, path: path) : nil
        let plan = ExecutionPlan(
            weights: model.weights, config: model.config, precision: precision, path: path, calibration: calibration, reference: exact)
        self.plan = plan
        self.labelCheckFactor = checks ? labelCheckFactor : 0
        labelCheck = exact.map { exact in
            // BF16 between INT8 and FP32 only where it runs natively (it costs half FP32's time there, three times it
            // where oneDNN emulates it).
            let bf16 = precision == .int8 && Self.runsBF16(path: path)
                ? ExecutionPlan(weights: model.weights, config: model.config, precision: .bf16, path: path) : nil
            return LabelCheck(factor: labelCheckFactor, passes: [plan] + (bf16.map { [$0] } ?? []) + [exact], calibration: calibration)
        }
    }

    /// Whether BF16 products run natively on `path` and the process's GEMM runtime.
    public static func runsBF16(path: KernelPath) -> Bool {
        min(path, KernelPath.detected).hasBF16 && ExecutionRuntime.configure().gemmPath.hasBF16
    }

    /// Loads the base model from a Hugging Face directory and prepares it for `precision`.
    public init(
        modelDirectory: String, precision: Precision = .fp32, path: KernelPath = .detected,
        labelCheckFactor: Float = InferenceEngine.defaultLabelCheckFactor, mergeBytes: Int = 0
    ) throws(ModelError) {
        self.init(
            model: try BertModel(directory: modelDirectory), precision: precision, path: path, labelCheckFactor: labelCheckFactor,
            mergeBytes: mergeBytes)
    }

    /// Rows answered by a more exact pass than the engine's own (re-checked or sent there) since the engine was made.
    public var labelRechecks: Int { rechecks.value }

    /// Bytes of prepared layers the engine holds: its precision's, and with the label check the more exact ones.
    public var preparedBytes: Int { (labelCheck?.passes ?? [plan]).reduce(0) { $0 + $1.bytes } }

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
        return zip(encodings, outputs).map { InferenceResult(ids: $0.ids, truncated: $0.truncated, output: $1.output, labelCheck: $1.outcome) }
    }

    /// Runs text pairs (`pair` nil: a single text), each with its own adapter, in one batch; a tokenizer without a
    /// pair template refuses pairs.
    public func run(pairs: [(text: String, pair: String?, adapter: LoRAAdapter?)]) throws(TokenizerError) -> [InferenceResult] {
        var encodings: [Encoding] = []
        for row in pairs { encodings.append(try row.pair.map { pair throws(TokenizerError) in try model.tokenizer.encode(row.text, pair: pair) } ?? encode(row.text)) }
        // A model with one token type (RoBERTa, DistilBERT) reads every id as type 0, whatever the template says.
        let typed = model.config.typeVocabSize > 1
        let inputs = zip(encodings, pairs).map { EncodedInput(ids: $0.ids, adapter: $1.adapter, typeIds: typed ? $0.typeIds : nil) }
        return zip(encodings, pass(inputs)).map { InferenceResult(ids: $0.ids, truncated: $0.truncated, output: $1.output, labelCheck: $1.outcome) }
    }

    /// Runs `texts` all with the same adapter.
    public func run(_ texts: [String], adapter: LoRAAdapter?) -> [InferenceResult] {
        run(texts.map { ($0, adapter) })
    }

    /// Runs already tokenised rows, after checking every id and length against the model.
    public func run(encoded inputs: [EncodedInput]) throws(InferenceError) -> [InferenceOutput] {
        try runChecked(encoded: inputs).map(\.output)
    }

    /// Runs already tokenised rows, saying for each which pass answered it (INT8's label check).
    public func runChecked(encoded inputs: [EncodedInput]) throws(InferenceError) -> [CheckedOutput] {
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
        return pass(inputs, pause: pause, sequential: true).map(\.output)
    }

    func check(_ inputs: [EncodedInput]) throws(InferenceError) {
        for (index, input) in inputs.enumerated() {
            guard !input.ids.isEmpty, input.ids.count <= model.config.maxPositionEmbeddings else {
                throw .invalidLength(row: index, length: input.ids.count, maximum: model.config.maxPositionEmbeddings)
            }
            if let bad = input.ids.first(where: { $0 < 0 || Int($0) >= model.config.vocabSize }) {
                throw .invalidTokenID(row: index, id: bad, vocabularySize: model.config.vocabSize)
            }
            if let types = input.typeIds {
                guard types.count == input.ids.count else { throw .invalidTokenTypes(row: index, reason: "\(types.count) token types for \(input.ids.count) ids") }
                if let bad = types.first(where: { $0 < 0 || Int($0) >= model.config.typeVocabSize }) {
                    throw .invalidTokenTypes(row: index, reason: "token type \(bad) is outside 0..<\(model.config.typeVocabSize)")
                }
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
    case invalidTokenTypes(row: Int, reason: String)

    public var description: String {
        switch self {
        case let .invalidLength(row, length, maximum):
            return "row \(row): \(length) token ids; a sequence needs 1 to \(maximum)"
        case let .invalidTokenID(row, id, size):
            return "row \(row): token id \(id) is outside the vocabulary (0..<\(size))"
        case let .invalidTokenTypes(row, reason):
            return "row \(row): \(reason)"
        }
    }
}
