/// The number format of the base model's linear layers.
///
/// Attention, softmax, LayerNorm, GELU, pooling, heads and every LoRA term run in FP32 in every precision.
public enum Precision: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Float32 everywhere: the exact reference (PEFT parity within 1e-4).
    case fp32
    /// INT8 weights (symmetric, one scale per output channel) and activations quantised per row at run time,
    /// accumulated in int32.
    case int8
    /// bfloat16 weights and activations, accumulated in float32: twice FP32's speed where the CPU has BF16 dot
    /// products (`KernelPath.avx512BF16` and above), and several times INT8's accuracy. INT8 engines' label check
    /// re-runs unsure rows in it first (`LabelCheck`).
    case bf16

    public var description: String { rawValue }
}
