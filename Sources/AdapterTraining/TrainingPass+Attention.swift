import AdapterEngine

/// Self-attention over packed sequences, forward and backward, for every family's training pass.
extension TrainingPass {
    /// Where each sequence's rows and attention probabilities lie in a packed batch.
    struct Packing {
        let starts: [Int]
        let lengths: [Int]
        let probabilityStarts: [Int]
        let rows: Int
        let probabilityCount: Int

        init(lengths: [Int], heads: Int) {
            var starts: [Int] = [], probabilityStarts: [Int] = []
            var rows = 0, probabilities = 0
            for length in lengths {
                starts.append(rows)
                rows += length
                probabilityStarts.append(probabilities)
                probabilities += heads * length * length
            }
            (self.starts, self.lengths, self.probabilityStarts, self.rows, probabilityCount) = (starts, lengths, probabilityStarts, rows, probabilities)
        }
    }

    /// `softmax(Q·Kᵀ/√d)·V` per sequence and head over `qkv` (Q | K | V per row), a token seeing only tokens at most
    /// `window` positions away: keeps the probabilities, writes the context.
    func attention(
        qkv: UnsafePointer<Float>, packing: Packing, window: Int = .max, probabilities: UnsafeMutablePointer<Float>,
        context: UnsafeMutablePointer<Float>
    ) {
        let hidden = model.config.hiddenSize, heads = model.config.numAttentionHeads, headSize = model.config.headSize
        let scale = 1 / Float(headSize).squareRoot()
        for (sequence, length) in packing.lengths.enumerated() {
            let start = packing.starts[sequence]
            for head in 0..<heads {
                let q = qkv + start * 3 * hidden + head * headSize
                let k = q + hidden, v = q + 2 * hidden
                let p = probabilities + packing.probabilityStarts[sequence] + head * length * length
                GEMM.sgemm(m: length, n: length, k: headSize, alpha: scale, a: q, lda: 3 * hidden, b: k, ldb: 3 * hidden, transposeB: true, beta: 0, c: p, ldc: length)
                if window < length {
                    for i in 0..<length {
                        for j in 0..<length where abs(i - j) > window { p[i * length + j] = -.infinity }
                    }
                }
                Self.softmaxRows(p, rows: length, width: length)
                GEMM.sgemm(m: length, n: headSize, k: length, a: p, lda: length, b: v, ldb: 3 * hidden, transposeB: false, beta: 0, c: context + start * hidden + head * headSize, ldc: hidden)
            }
        }
    }

    /// Back through `attention`: `dP = dC·Vᵀ`, `dV = Pᵀ·dC`, `dS = P ⊙ (dP − rowsum(dP ⊙ P))`, `dQ = s·dS·K`,
    /// `dK = s·dSᵀ·Q`, written to `dQKV` (Q | K | V per row); `scratch` holds a longest × longest block.
    func attentionBackward(
        qkv: UnsafePointer<Float>, probabilities: UnsafePointer<Float>, dContext: UnsafePointer<Float>, packing: Packing,
        dQKV: UnsafeMutablePointer<Float>, scratch ds: UnsafeMutablePointer<Float>
    ) {
        let hidden = model.config.hiddenSize, heads = model.config.numAttentionHeads, headSize = model.config.headSize
        let scale = 1 / Float(headSize).squareRoot()
        for (sequence, length) in packing.lengths.enumerated() {
            let start = packing.starts[sequence]
            for head in 0..<heads {
                let offset = start * 3 * hidden + head * headSize
                let q = qkv + offset, k = q + hidden, v = q + 2 * hidden
                let dq = dQKV + offset, dk = dq + hidden, dv = dq + 2 * hidden
                let dc = dContext + start * hidden + head * headSize
                let p = probabilities + packing.probabilityStarts[sequence] + head * length * length
                GEMM.sgemm(m: length, n: length, k: headSize, a: dc, lda: hidden, b: v, ldb: 3 * hidden, transposeB: true, beta: 0, c: ds, ldc: length)
                GEMM.sgemm(m: length, n: headSize, k: length, a: p, lda: length, transposeA: true, b: dc, ldb: hidden, transposeB: false, beta: 0, c: dv, ldc: 3 * hidden)
                for row in 0..<length {
                    var dot: Float = 0
                    for column in 0..<length { dot += ds[row * length + column] * p[row * length + column] }
                    for column in 0..<length { ds[row * length + column] = p[row * length + column] * (ds[row * length + column] - dot) }
                }
                GEMM.sgemm(m: length, n: headSize, k: length, alpha: scale, a: ds, lda: length, b: k, ldb: 3 * hidden, transposeB: false, beta: 0, c: dq, ldc: 3 * hidden)
                GEMM.sgemm(m: length, n: headSize, k: length, alpha: scale, a: ds, lda: length, transposeA: true, b: q, ldb: 3 * hidden, transposeB: false, beta: 0, c: dk, ldc: 3 * hidden)
            }
        }
    }
}
