/// The low-rank pair of one adapted module: `Δy = scaling · (x·Aᵀ)·Bᵀ`.
///
/// For a Linear layer `A` is `[rank, in]` and `B` is `[out, rank]`. For an Embedding layer `A` is
/// `[rank, rows]` (a column per token id) and `B` is `[dim, rank]`, as PEFT stores `lora_embedding_A/B`.
public struct LoRAWeights: Sendable {
    public let a: Tensor
    public let b: Tensor
    /// The module's rank (after `rank_pattern`).
    public let rank: Int
    /// `alpha / rank`, or `alpha / √rank` with rsLoRA (after `alpha_pattern`).
    public let scaling: Float

    /// Number of inputs (rows of the table for an embedding).
    public var inFeatures: Int { a.shape[1] }
    /// Number of outputs.
    public var outFeatures: Int { b.shape[0] }
}

/// A sequence-classification head carried by an adapter in `modules_to_save`.
public struct ClassifierHead: Sendable {
    /// `classifier`: `[labels, hidden]` plus bias.
    public let classifier: LinearWeights
    /// A replacement `bert.pooler.dense`, when the adapter saved one.
    public let pooler: LinearWeights?
    /// Label names, one per classifier output.
    public let labels: [String]
}
