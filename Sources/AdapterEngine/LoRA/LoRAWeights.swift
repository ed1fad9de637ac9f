/// The low-rank pair of one adapted module: `Δy = scaling · (x·Aᵀ)·Bᵀ`.
///
/// For a Linear layer `A` is `[rank, in]` and `B` is `[out, rank]`. For an Embedding layer `A` is
/// `[rank, rows]` (a column per token id) and `B` is `[dim, rank]`, as PEFT stores `lora_embedding_A/B`. `B` is kept
/// as `scaling · Bᵀ` (`[rank, out]`), the layout every product here reads, so the pair costs no more memory than
/// the file's tensors.
public struct LoRAWeights: Sendable {
    public let a: Tensor
    /// `scaling · Bᵀ`, `[rank, out]`.
    public let scaledBTransposed: Tensor
    /// The module's rank (after `rank_pattern`).
    public let rank: Int
    /// `alpha / rank`, or `alpha / √rank` with rsLoRA (after `alpha_pattern`).
    public let scaling: Float
    /// DoRA's per-output scale `m / ‖W + s·B·A‖` (row norms of the adapted weight), `[out]`, computed once at load
    /// as PEFT does at inference; nil for plain LoRA. The module's output is then `g ⊙ (W·x + s·B·A·x) + bias`.
    public let magnitudeScale: Tensor?

    /// Number of inputs (rows of the table for an embedding).
    public var inFeatures: Int { a.shape[1] }
    /// Number of outputs.
    public var outFeatures: Int { scaledBTransposed.shape[1] }

    /// A pair already in the engine's layout: `a` `[rank, in]` and `scaledBTransposed` `[rank, out]`, the scaling
    /// folded in (a blend's concatenated terms).
    init(a: Tensor, scaledBTransposed: Tensor) {
        self.a = a
        self.scaledBTransposed = scaledBTransposed
        rank = a.shape[0]
        scaling = 1
        magnitudeScale = nil
    }

    /// Pairs `a` and `b` (as PEFT stores them) with their rank and scaling.
    public init(a: Tensor, b: Tensor, rank: Int, scaling: Float, magnitudeScale: Tensor? = nil) {
        self.a = a
        self.rank = rank
        self.scaling = scaling
        self.magnitudeScale = magnitudeScale
        let outputs = b.shape[0]
        scaledBTransposed = Tensor(shape: [rank, outputs], storage: FloatStorage(count: rank * outputs) { buffer in
            let source = b.pointer
            for output in 0..<outputs {
                for k in 0..<rank { buffer[k * outputs + output] = scaling * source[output * rank + k] }
            }
        })
        // Only the transposed copy is read from now on.
        b.storage.releaseResidentPages()
    }
}

/// A sequence-classification head carried by an adapter in `modules_to_save`.
public struct ClassifierHead: Sendable {
    /// `classifier`: `[labels, hidden]` plus bias.
    public internal(set) var classifier: LinearWeights
    /// A replacement `bert.pooler.dense` (RoBERTa's `classifier.dense`, DistilBERT's `pre_classifier`, ModernBERT's
    /// `head.dense`), when the adapter saved one.
    public internal(set) var pooler: LinearWeights?
    /// Label names, one per classifier output.
    public let labels: [String]
    /// What the outputs mean (transformers' `problem_type`, from `labels.json`).
    public var problemType: ProblemType = .singleLabel
    /// The activation after the pooler: tanh (BERT's pooler, RoBERTa's head) or ReLU (DistilBERT's pre-classifier).
    public var activation: Activation = .tanh
    /// Whether the classifier reads the pooled first token (sequence classification) or every token
    /// (`task_type: TOKEN_CLS`; only ModernBERT's head has a pooler then, applied to each token).
    public var perToken = false
    /// The LayerNorm after the activation (ModernBERT's head: dense, GELU, norm), nil for the other families.
    public var norm: LayerNormWeights?
    /// The norm's epsilon.
    public var normEps: Float = 1e-5
    /// Which of a sequence's final rows a sequence classifier's pooler reads.
    public var pooling: Pooling = .first

    /// The activation between a head's pooler and its classifier.
    public enum Activation: String, Sendable {
        case tanh, relu
        /// Exact (erf) GELU: ModernBERT's `classifier_activation`.
        case gelu
    }

    /// How a sequence classifier pools the encoder's final rows.
    public enum Pooling: String, Sendable {
        /// The first row ([CLS], `<s>`).
        case first
        /// The mean of the sequence's rows (ModernBERT's `classifier_pooling: mean`).
        case mean
    }

    /// transformers' `config.problem_type`: how a sequence classifier's outputs are read.
    public enum ProblemType: String, Sendable {
        /// One label: the arg-max (softmax).
        case singleLabel = "single_label_classification"
        /// Any number of labels: each whose logit is above 0 (sigmoid above one half).
        case multiLabel = "multi_label_classification"
        /// One number: the single output (`num_labels: 1`).
        case regression
    }

    /// The labels a multi-label head turns on for `logits`.
    public func labelsOn(_ logits: [Float]) -> [String] {
        zip(labels, logits).filter { $0.1 > 0 }.map(\.0)
    }
}
