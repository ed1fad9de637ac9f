/// The number format of the base model's linear layers.
///
/// Attention, softmax, LayerNorm, GELU, pooling, heads and every LoRA term run in FP32 in both precisions.
public enum Precision: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Float32 everywhere: the exact reference (PEFT parity within 1e-4).
    case fp32
    /// INT8 weights (symmetric, one scale per output channel) and activations quantised per row at run time,
    /// accumulated in int32.
    case int8

    public var description: String { rawValue }
}
