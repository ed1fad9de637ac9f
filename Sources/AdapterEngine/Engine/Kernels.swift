import COpenBLAS
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The numeric building blocks of the forward pass, on raw row-major buffers.
enum Kernels {
    /// `y[rows × out] = x[rows × in] · Wᵀ + b`, rows `ldx`/`ldy` apart.
    static func linear(
        _ layer: LinearWeights, x: UnsafePointer<Float>, ldx: Int, rows: Int, y: UnsafeMutablePointer<Float>, ldy: Int
    ) {
        let outputs = layer.outFeatures
        let inputs = layer.inFeatures
        var beta: Float = 0
        if let bias = layer.bias {
            for row in 0..<rows { (y + row * ldy).update(from: bias.pointer, count: outputs) }
            beta = 1
        }
        cblas_sgemm(
            CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(outputs), Int32(inputs),
            1, x, Int32(ldx), layer.weight.pointer, Int32(inputs), beta, y, Int32(ldy))
    }

    /// `y += s · (x·Aᵀ)·Bᵀ` for `rows` rows; `scratch` holds `rows × rank` floats.
    static func addLoRA(
        _ lora: LoRAWeights, x: UnsafePointer<Float>, ldx: Int, rows: Int,
        y: UnsafeMutablePointer<Float>, ldy: Int, scratch: UnsafeMutablePointer<Float>
    ) {
        let rank = Int32(lora.rank)
        cblas_sgemm(
            CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), rank, Int32(lora.inFeatures),
            1, x, Int32(ldx), lora.a.pointer, Int32(lora.inFeatures), 0, scratch, rank)
        cblas_sgemm(
            CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(lora.outFeatures), rank,
            lora.scaling, scratch, rank, lora.b.pointer, rank, 1, y, Int32(ldy))
    }

    /// `y += s · A[:, ids]ᵀ·Bᵀ`: LoRA on an embedding table, for the token ids of `rows` rows.
    static func addEmbeddingLoRA(
        _ lora: LoRAWeights, ids: UnsafePointer<Int32>, rows: Int,
        y: UnsafeMutablePointer<Float>, ldy: Int, scratch: UnsafeMutablePointer<Float>
    ) {
        let rank = lora.rank
        let table = lora.inFeatures
        let a = lora.a.pointer
        for row in 0..<rows {
            let id = Int(ids[row])
            for k in 0..<rank { scratch[row * rank + k] = a[k * table + id] }
        }
        cblas_sgemm(
            CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(lora.outFeatures), Int32(rank),
            lora.scaling, scratch, Int32(rank), lora.b.pointer, Int32(rank), 1, y, Int32(ldy))
    }

    /// LayerNorm over each `width`-wide row, in place.
    static func layerNorm(_ x: UnsafeMutablePointer<Float>, rows: Int, width: Int, weights: LayerNormWeights, eps: Float) {
        let gamma = weights.gamma.pointer
        let beta = weights.beta.pointer
        for row in 0..<rows {
            let values = x + row * width
            var sum: Float = 0
            for i in 0..<width { sum += values[i] }
            let mean = sum / Float(width)
            var squares: Float = 0
            for i in 0..<width {
                let centred = values[i] - mean
                squares += centred * centred
            }
            let inverse = 1 / (squares / Float(width) + eps).squareRoot()
            for i in 0..<width { values[i] = (values[i] - mean) * inverse * gamma[i] + beta[i] }
        }
    }

    /// Exact (erf) GELU, in place.
    static func gelu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        let invSqrt2: Float = 0.70710678118654752440
        for i in 0..<count {
            let value = x[i]
            x[i] = 0.5 * value * (1 + erf(value * invSqrt2))
        }
    }

    /// erf(x) for Float as a rational approximation accurate to a few ulp (the one Eigen and XLA use).
    /// glibc's `erff` is a call per element that the compiler cannot vectorise; this inlines and does.
    @inline(__always)
    static func erf(_ input: Float) -> Float {
        let x = min(max(input, -4), 4)
        let x2 = x * x
        var p: Float = -2.72614225801306e-10
        p = p * x2 + 2.77068142495902e-08
        p = p * x2 - 2.10102402082508e-06
        p = p * x2 - 5.69250639462346e-05
        p = p * x2 - 7.34990630326855e-04
        p = p * x2 - 2.95459980854025e-03
        p = p * x2 - 1.60960333262415e-02
        p *= x
        var q: Float = -1.45660718464996e-05
        q = q * x2 - 2.13374055278905e-04
        q = q * x2 - 1.68282697438203e-03
        q = q * x2 - 7.37332916720468e-03
        q = q * x2 - 1.42647390514189e-02
        return p / q
    }

    /// Softmax of each `width`-wide row, in place.
    static func softmaxRows(_ x: UnsafeMutablePointer<Float>, rows: Int, width: Int) {
        for row in 0..<rows {
            let values = x + row * width
            var maximum = -Float.infinity
            for i in 0..<width { maximum = max(maximum, values[i]) }
            var sum: Float = 0
            for i in 0..<width {
                let e = expf(values[i] - maximum)
                values[i] = e
                sum += e
            }
            let inverse = 1 / sum
            for i in 0..<width { values[i] *= inverse }
        }
    }

    /// `x += y`, element-wise.
    static func add(_ y: UnsafePointer<Float>, into x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { x[i] += y[i] }
    }
}
