import CEngineKernels

/// The small FP32 products around the base model: LoRA terms and the classification heads.
enum Kernels {
    /// `y[rows × out] = x[rows × in] · Wᵀ + b`, rows `ldx`/`ldy` apart.
    static func linear(
        _ layer: LinearWeights, x: UnsafePointer<Float>, ldx: Int, rows: Int, y: UnsafeMutablePointer<Float>, ldy: Int
    ) {
        layer.apply(x: x, ldx: ldx, rows: rows, y: y, ldy: ldy)
    }

    /// `y += s · (x·Aᵀ)·Bᵀ` for `rows` rows; `scratch` holds `rows × rank` floats.
    static func addLoRA(
        _ lora: LoRAWeights, x: UnsafePointer<Float>, ldx: Int, rows: Int,
        y: UnsafeMutablePointer<Float>, ldy: Int, scratch: UnsafeMutablePointer<Float>, isa: Int32
    ) {
        // Up to a few dozen rows (one request, or one adapter's share of a mixed batch) the two oneDNN calls' fixed
        // cost is most of the time: a forward pass of 16 tokens makes 24 of them. Larger blocks go to the GEMM.
        if rows <= smallLoRARows {
            adk_lora(
                isa, x, Int64(ldx), Int64(rows), lora.a.pointer, lora.scaledBTransposed.pointer, Int64(lora.rank),
                Int64(lora.inFeatures), Int64(lora.outFeatures), y, Int64(ldy), scratch)
            return
        }
        GEMM.sgemm(
            m: rows, n: lora.rank, k: lora.inFeatures, a: x, lda: ldx, b: lora.a.pointer, ldb: lora.inFeatures,
            transposeB: true, beta: 0, c: scratch, ldc: lora.rank)
        GEMM.sgemm(
            m: rows, n: lora.outFeatures, k: lora.rank, a: scratch, lda: lora.rank,
            b: lora.scaledBTransposed.pointer, ldb: lora.outFeatures, transposeB: false, beta: 1, c: y, ldc: ldy)
    }

    /// `y1 += s1·(x·A1ᵀ)·B1ᵀ` and `y2 += s2·(x·A2ᵀ)·B2ᵀ` for up to `smallLoRARows` rows in one pass of the team (a
    /// layer's query and value terms read the same rows); `scratch` holds `rows × (rank1 + rank2)` floats.
    static func addLoRAPair(
        _ first: LoRAWeights, _ second: LoRAWeights, x: UnsafePointer<Float>, ldx: Int, rows: Int,
        y1: UnsafeMutablePointer<Float>, y2: UnsafeMutablePointer<Float>, ldy: Int, scratch: UnsafeMutablePointer<Float>, isa: Int32
    ) {
        adk_lora_pair(
            isa, x, Int64(ldx), Int64(rows), Int64(first.inFeatures), Int64(first.outFeatures), Int64(ldy),
            first.a.pointer, first.scaledBTransposed.pointer, Int64(first.rank), y1, scratch,
            second.a.pointer, second.scaledBTransposed.pointer, Int64(second.rank), y2, scratch + rows * first.rank)
    }

    /// Rows up to which `addLoRA` runs its own kernel.
    static let smallLoRARows = 64

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
        GEMM.sgemm(
            m: rows, n: lora.outFeatures, k: rank, a: scratch, lda: rank, b: lora.scaledBTransposed.pointer,
            ldb: lora.outFeatures, transposeB: false, beta: 1, c: y, ldc: ldy)
    }
}
