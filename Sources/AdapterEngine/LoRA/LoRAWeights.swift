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
    /// `scaling · Bᵀ`, `[rank, out]`: the layout the engine's LoRA kernel reads (a copy the size of `B`).
    public let scaledBTransposed: Tensor
    /// `Aᵀ`, `[in, paddedRank]` with zeros beyond `rank`: the other layout the kernel reads.
    public let aTransposed: Tensor
    /// `rank` rounded up to a multiple of 16 (whole vectors on every kernel path).
    public var paddedRank: Int { (rank + 15) / 16 * 16 }

    /// Pairs `a` and `b` with their rank and scaling.
    public init(a: Tensor, b: Tensor, rank: Int, scaling: Float) {
        self.a = a
        self.b = b
        self.rank = rank
        self.scaling = scaling
        let outputs = b.shape[0]
        scaledBTransposed = Tensor(shape: [rank, outputs], storage: FloatStorage(count: rank * outputs) { buffer in
            let source = b.pointer
            for output in 0..<outputs {
                for k in 0..<rank { buffer[k * outputs + output] = scaling * source[output * rank + k] }
            }
        })
        let inputs = a.shape[1], padded = (rank + 15) / 16 * 16
        aTransposed = Tensor(shape: [inputs, padded], storage: FloatStorage(count: inputs * padded) { buffer in
            buffer.initialize(repeating: 0)
            let source = a.pointer
            for k in 0..<rank {
                for input in 0..<inputs { buffer[input * padded + k] = source[k * inputs + input] }
            }
        })
    }

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
