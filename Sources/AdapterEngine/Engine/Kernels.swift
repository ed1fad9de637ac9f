import CEngineKernels

/// The small FP32 products around the base model: LoRA terms and the classification heads.
enum Kernels {
    /// `y[rows × out] = x[rows × in] · Wᵀ + b`, rows `ldx`/`ldy` apart.
    static func linear(
        _ layer: LinearWeights, x: UnsafePointer<Float>, ldx: Int, rows: Int, y: UnsafeMutablePointer<Float>, ldy: Int
    ) {
        layer.apply(x: x, ldx: ldx, rows: rows, y: y, ldy: ldy)
    }

    /// One adapter's block of rows and its LoRA terms, for `addLoRA(_:x:ldx:y:ldy:scratch:isa:)`: one or two terms
    /// (a layer's query and value read the same rows), each added from its column offset in `y`.
    struct LoRAGroup {
        /// The block's rows of `x` and `y`.
        let rows: Range<Int>
        /// One or two terms with the same input and output widths.
        let terms: [(weights: LoRAWeights, column: Int)]
    }

    /// `y[rows, column…] += s · (x·Aᵀ)·Bᵀ` for every group's terms, in one pass of the team; `scratch` holds
    /// `x`'s rows × twice the largest rank floats.
    static func addLoRA(
        _ groups: [LoRAGroup], x: UnsafePointer<Float>, ldx: Int, y: UnsafeMutablePointer<Float>, ldy: Int,
        scratch: UnsafeMutablePointer<Float>, isa: Int32
    ) {
        guard let shape = groups.first?.terms.first?.weights else { return }
        // Each group's scratch starts at its first row × the stride, so the groups' blocks never overlap.
        let stride = 2 * groups.flatMap { $0.terms.map(\.weights.rank) }.max()!
        let blocks = groups.map { group in
            precondition((1...2).contains(group.terms.count), "a LoRA group has one or two terms")
            let first = group.terms[0], second = group.terms.count > 1 ? group.terms[1] : nil
            let t1 = scratch + group.rows.lowerBound * stride
            let origin = y + group.rows.lowerBound * ldy
            return adk_lora_group(
                row: Int64(group.rows.lowerBound), rows: Int64(group.rows.count),
                a1: first.weights.a.pointer, bt1: first.weights.scaledBTransposed.pointer, rank1: Int64(first.weights.rank),
                y1: origin + first.column, t1: t1,
                a2: second?.weights.a.pointer, bt2: second?.weights.scaledBTransposed.pointer, rank2: Int64(second?.weights.rank ?? 0),
                y2: second.map { origin + $0.column }, t2: t1 + group.rows.count * first.weights.rank)
        }
        adk_lora_groups(isa, x, Int64(ldx), Int64(shape.inFeatures), Int64(shape.outFeatures), Int64(ldy), blocks, Int64(blocks.count))
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
        GEMM.sgemm(
            m: rows, n: lora.outFeatures, k: rank, a: scratch, lda: rank, b: lora.scaledBTransposed.pointer,
            ldb: lora.outFeatures, transposeB: false, beta: 1, c: y, ldc: ldy)
    }
}
