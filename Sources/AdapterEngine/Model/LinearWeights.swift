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

    /// `y[rows × out] = x[rows × in] · Wᵀ + b`, rows `ldx`/`ldy` apart (FP32).
    public func apply(x: UnsafePointer<Float>, ldx: Int, rows: Int, y: UnsafeMutablePointer<Float>, ldy: Int) {
        var beta: Float = 0
        if let bias {
            for row in 0..<rows { (y + row * ldy).update(from: bias.pointer, count: outFeatures) }
            beta = 1
        }
        GEMM.sgemm(
            m: rows, n: outFeatures, k: inFeatures, a: x, lda: ldx, b: weight.pointer, ldb: inFeatures, transposeB: true,
            beta: beta, c: y, ldc: ldy)
    }
}

/// LayerNorm's scale and shift.
public struct LayerNormWeights: Sendable {
    /// Scale (`weight` in PyTorch).
    public let gamma: Tensor
    /// Shift (`bias` in PyTorch).
    public let beta: Tensor
}
