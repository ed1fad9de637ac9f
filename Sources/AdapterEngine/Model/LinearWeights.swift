/// A dense layer `y = x·Wᵀ + b` with `W` stored as `[out, in]` (PyTorch's layout).
public struct LinearWeights: Sendable {
    /// `[outFeatures, inFeatures]`.
    public let weight: Tensor
    /// `[outFeatures]`, if the layer has a bias.
    public let bias: Tensor?

    /// Number of inputs.
    public var inFeatures: Int { weight.shape[1] }
    /// Number of outputs.
    public var outFeatures: Int { weight.shape[0] }

    /// Wraps a weight matrix and optional bias.
    public init(weight: Tensor, bias: Tensor?) {
        self.weight = weight
        self.bias = bias
    }
}

/// LayerNorm's scale and shift.
public struct LayerNormWeights: Sendable {
    /// Scale (`weight` in PyTorch).
    public let gamma: Tensor
    /// Shift (`bias` in PyTorch).
    public let beta: Tensor
}
