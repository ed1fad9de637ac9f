/// How the workers' LoRA factors become one global adapter. Averaging A and B separately is not the average of
/// the products B·A each worker learned (FedIT's error); freezing A avoids it.
public enum AggregationMethod: String, Sendable, Codable, CaseIterable {
    /// FFA-LoRA: every A stays as the first global adapter set it (the same on every worker); workers train B and
    /// the head, and the weighted mean of the Bs is exactly the weighted mean of the products: exact, half the bytes
    /// up, and the method for differential privacy.
    case frozenA = "ffa"
    /// Workers train A and B; the exact weighted mean of their products B·A is re-factored to the rank by SVD
    /// (stacking, then the best rank-r approximation: `LowRankMerge`). The default: the most accurate in the study.
    case productSVD = "svd"
    /// FedIT: workers train A and B; each is averaged on its own (inexact; kept for comparison).
    case factorAverage = "fedit"

    /// Whether the workers keep every LoRA A as they receive it.
    public var freezesLoRAA: Bool { self == .frozenA }

    /// Whether a tensor named `name` is trained by the workers (and so sent back and averaged).
    public func trains(_ name: String) -> Bool {
        !(freezesLoRAA && name.hasSuffix("lora_A.weight"))
    }
}
