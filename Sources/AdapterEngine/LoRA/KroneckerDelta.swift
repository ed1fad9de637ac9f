/// A LoKr update kept as its two Kronecker factors, `ΔW = kron(w1, w2)` with the scaling folded into `w1`, and
/// applied as `Y = w1 · X · w2ᵀ` on each row seen as a `[b, d]` matrix: `b·d·c + a·b·c` multiply-adds per row instead
/// of the `in·out` of a dense ΔW or the `rank·(in + out)` of an equivalent low-rank pair, chosen at load when it is
/// the cheapest of them.
public struct KroneckerDelta: Sendable {
    /// `scaling · w1`, `[a, b]`.
    public let w1: Tensor
    /// `w2`, `[c, d]`.
    public let w2: Tensor

    /// Outputs (`a·c`).
    public var outFeatures: Int { w1.shape[0] * w2.shape[0] }
    /// Inputs (`b·d`).
    public var inFeatures: Int { w1.shape[1] * w2.shape[1] }
    /// Multiply-adds per row.
    public var cost: Int { w1.shape[1] * w2.shape[1] * w2.shape[0] + w1.shape[0] * w1.shape[1] * w2.shape[0] }
    /// Scratch floats per row while it is applied (`Kernels.addKronecker`).
    public var scratchPerRow: Int { (w1.shape[1] + 2 * w1.shape[0]) * w2.shape[1] + w1.shape[0] * w2.shape[0] }

    /// The factors of `scaling · kron(w1, w2)`.
    public init(w1: Tensor, w2: Tensor, scaling: Float) {
        let scaled = Tensor(shape: w1.shape, storage: FloatStorage(count: w1.count) { out in
            for index in 0..<w1.count { out[index] = scaling * w1.pointer[index] }
        })
        self.w1 = scaled
        self.w2 = w2
    }

    /// The dense `ΔW`, `[a·c, b·d]` (merged mode).
    public var dense: Tensor { AdapterBuilder.kron(w1, w2) }
}
