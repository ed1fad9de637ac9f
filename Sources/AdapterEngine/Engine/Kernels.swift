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

    /// `y[r] += kron(w1, w2) · x[r]` for `rows` rows (`x` rows contiguous, `b·d` wide): each row as a `[b, d]` matrix
    /// `X`, `Y = (w1 · X) · w2ᵀ`, in two products per block of rows. The rows' `X` side by side, `[b, rows·d]`, make
    /// the first one product; its `[a, d]` results stacked, `[rows·a, d]`, make the second, whose rows are then laid
    /// out as the outputs are (`a` rows of `c` per input row). The only data moved between them are whole `d`-wide
    /// chunks (per-row transposes cost more than the products). Blocks are sized so the intermediate products stay in
    /// cache. `scratch` holds `rows · delta.scratchPerRow` floats.
    static func addKronecker(
        _ delta: KroneckerDelta, x: UnsafePointer<Float>, rows: Int, y: UnsafeMutablePointer<Float>, ldy: Int,
        scratch: UnsafeMutablePointer<Float>
    ) {
        // Products this small cost less on the calling thread than waking the team for each.
        let threads = adk_begin_sequential()
        defer { adk_end_sequential(threads) }
        let (a, b) = (delta.w1.shape[0], delta.w1.shape[1])
        let (c, d) = (delta.w2.shape[0], delta.w2.shape[1])
        let block = kroneckerBlockRows(delta)
        for start in stride(from: 0, to: rows, by: block) {
            let count = min(block, rows - start)
            let side = scratch, products = side + count * b * d, stacked = products + count * a * d, out = stacked + count * a * d
            // [X_1 | X_2 | …] [b, count·d]
            let source = x + start * b * d
            for row in 0..<count {
                for j in 0..<b { (side + j * count * d + row * d).update(from: source + (row * b + j) * d, count: d) }
            }
            // [w1·X_1 | w1·X_2 | …] [a, count·d]
            GEMM.sgemm(m: a, n: count * d, k: b, a: delta.w1.pointer, lda: b, b: side, ldb: count * d, transposeB: false, beta: 0, c: products, ldc: count * d)
            // Stacked [count·a, d]: row (r, i) is (w1·X_r)[i, :].
            for i in 0..<a {
                for row in 0..<count { (stacked + (row * a + i) * d).update(from: products + i * count * d + row * d, count: d) }
            }
            // [count·a, c] = stacked · w2ᵀ: row r's a·c values are Y_r as the outputs are laid out.
            if ldy == a * c {
                GEMM.sgemm(
                    m: count * a, n: c, k: d, a: stacked, lda: d, b: delta.w2.pointer, ldb: d, transposeB: true, beta: 1,
                    c: y + start * ldy, ldc: c)
            } else {
                GEMM.sgemm(m: count * a, n: c, k: d, a: stacked, lda: d, b: delta.w2.pointer, ldb: d, transposeB: true, beta: 0, c: out, ldc: c)
                for row in 0..<count {
                    let from = out + row * a * c, to = y + (start + row) * ldy
                    for index in 0..<(a * c) { to[index] += from[index] }
                }
            }
        }
    }

    /// Rows per block of `addKronecker`: intermediate products of about 256 KiB, to stay in a core's L2.
    static func kroneckerBlockRows(_ delta: KroneckerDelta) -> Int { max(1, 65_536 / delta.scratchPerRow) }

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
