import CEngineKernels

/// Merged mode for a device that serves a single adapter: `W' = W + s·B·A` folded into private copies of the
/// adapted weights, so inference costs exactly the base model's. The shared base weights are not touched.
public struct MergedModel: Sendable {
    /// The base model with merged weights.
    public let model: BertModel
    /// The adapter's head, with no LoRA pairs left to apply.
    public let adapter: LoRAAdapter
    /// The engine that runs the merged weights.
    public let engine: InferenceEngine

    /// Merges `adapter` into a copy of the weights of each module it adapts, prepared for `precision`.
    public init(base: BertModel, adapter: LoRAAdapter, precision: Precision = .fp32, path: KernelPath = .detected) {
        var weights = base.weights
        for (table, lora) in zip(EmbeddingTable.allCases, adapter.embeddings) {
            if let lora { weights.embeddings[table.rawValue] = Self.mergedEmbedding(weights.embeddings[table.rawValue], lora) }
        }
        Self.mergeEncoder(adapter, into: &weights)
        // The pooler's LoRA pair merged into the pooler this adapter runs with (its own saved one or the base one);
        // everything else about the head (activation, norm, pooling, per-token) stays as it is.
        var head = adapter.head
        if let lora = adapter.pooler, let pooler = adapter.head?.pooler ?? weights.pooler {
            weights.pooler = Self.merged(pooler, lora)
            head?.pooler = nil
        }
        let merged = LoRAAdapter(
            name: adapter.name, config: adapter.config,
            layers: adapter.layers.map { $0.map { _ in nil } }, embeddings: adapter.embeddings.map { _ in nil }, pooler: nil,
            head: head)
        model = BertModel(directory: base.directory, config: base.config, weights: weights, tokenizer: base.tokenizer)
        self.adapter = merged
        engine = InferenceEngine(model: model, precision: precision, path: path)
    }

    /// Runs `texts` through the merged model.
    public func run(_ texts: [String]) -> [InferenceResult] {
        engine.run(texts, adapter: adapter)
    }

    /// Folds `adapter`'s encoder terms (LoRA-family pairs, DoRA, LoKr's Kronecker factors, IA³) into copies of the
    /// layers they change (`LoRAAdapter.changedGroups`). Embedding tables, the pooler and the head are left as they are.
    static func mergeEncoder(_ adapter: LoRAAdapter, into weights: inout BertWeights, pause: () -> Void = {}) {
        for layer in adapter.layers.indices {
            pause()
            for slot in LinearSlot.allCases {
                if let lora = adapter.layers[layer][slot.rawValue] { update(&weights, layer: layer, slot: slot) { merged($0, lora) } }
                if let delta = adapter.kroneckers[layer][slot.rawValue] { update(&weights, layer: layer, slot: slot) { added($0, delta.dense) } }
                if let scaling = adapter.scalings[layer][slot.rawValue] { update(&weights, layer: layer, slot: slot) { scaled($0, scaling) } }
            }
        }
    }

    /// Replaces `slot` of `layer` with `transform` of the weights an adapter's term there adds to: ModernBERT's
    /// query slot is the whole `attn.Wqkv`, whose thirds the query, key and value slots then view again.
    static func update(_ weights: inout BertWeights, layer: Int, slot: LinearSlot, _ transform: (LinearWeights) -> LinearWeights) {
        guard slot == .query, let fused = weights.layers[layer].fusedQueryKeyValue else {
            weights.layers[layer][slot] = transform(weights.layers[layer][slot])
            return
        }
        let changed = transform(fused)
        let hidden = fused.inFeatures
        weights.layers[layer].fusedQueryKeyValue = changed
        for (third, part) in [LinearSlot.query, .key, .value].enumerated() {
            let rows = (third * hidden)..<((third + 1) * hidden)
            weights.layers[layer][part] = LinearWeights(weight: changed.weight.rows(rows), bias: changed.bias?.rows(rows))
        }
    }

    static func merged(_ linear: LinearWeights, _ lora: LoRAWeights) -> LinearWeights {
        let outputs = linear.outFeatures, inputs = linear.inFeatures
        let weight = FloatStorage(count: outputs * inputs) { out in
            out.baseAddress!.update(from: linear.weight.pointer, count: outputs * inputs)
            // W'[out × in] += (s · B)[out × r] · A[r × in]; GEMM.sgemm takes its left operand untransposed, so
            // s · B is laid out again from the kept s · Bᵀ.
            let scaledB = UnsafeMutablePointer<Float>.allocate(capacity: outputs * lora.rank)
            defer { scaledB.deallocate() }
            adk_transpose(lora.scaledBTransposed.pointer, Int64(lora.rank), Int64(outputs), scaledB, Int64(lora.rank))
            GEMM.sgemm(
                m: outputs, n: inputs, k: lora.rank, a: scaledB, lda: lora.rank,
                b: lora.a.pointer, ldb: inputs, transposeB: false, beta: 1, c: out.baseAddress!, ldc: inputs)
            // DoRA: each row of W + s·B·A rescaled to its magnitude (the bias stays as it is).
            if let scale = lora.magnitudeScale?.pointer {
                for row in 0..<outputs {
                    for column in 0..<inputs { out[row * inputs + column] *= scale[row] }
                }
            }
        }
        return LinearWeights(weight: Tensor(shape: linear.weight.shape, storage: weight), bias: linear.bias)
    }

    /// `W + ΔW` in a copy of the layer.
    static func added(_ linear: LinearWeights, _ delta: Tensor) -> LinearWeights {
        let count = linear.outFeatures * linear.inFeatures
        let weight = FloatStorage(count: count) { out in
            for index in 0..<count { out[index] = linear.weight.pointer[index] + delta.pointer[index] }
        }
        return LinearWeights(weight: Tensor(shape: linear.weight.shape, storage: weight), bias: linear.bias)
    }

    /// IA³ folded into a copy of the layer: `W·diag(l)` for input scaling; `diag(l)·W` and `l ⊙ b` for output scaling.
    static func scaled(_ linear: LinearWeights, _ scaling: IA3Scaling) -> LinearWeights {
        let outputs = linear.outFeatures, inputs = linear.inFeatures
        let l = scaling.vector.pointer
        let weight = FloatStorage(count: outputs * inputs) { out in
            let w = linear.weight.pointer
            for row in 0..<outputs {
                for column in 0..<inputs {
                    out[row * inputs + column] = w[row * inputs + column] * (scaling.scalesInput ? l[column] : l[row])
                }
            }
        }
        var bias = linear.bias
        if !scaling.scalesInput, let original = linear.bias {
            bias = Tensor(shape: original.shape, storage: FloatStorage(count: outputs) { out in
                for row in 0..<outputs { out[row] = original.pointer[row] * l[row] }
            })
        }
        return LinearWeights(weight: Tensor(shape: linear.weight.shape, storage: weight), bias: bias)
    }

    static func mergedEmbedding(_ table: Tensor, _ lora: LoRAWeights) -> Tensor {
        let rows = table.shape[0], width = table.shape[1]
        let storage = FloatStorage(count: rows * width) { out in
            out.baseAddress!.update(from: table.pointer, count: rows * width)
            // E'[rows × dim] += s · Aᵀ[rows × r] · Bᵀ[r × dim]
            // GEMM.sgemm takes A untransposed, so Aᵀ is laid out first.
            let aT = UnsafeMutablePointer<Float>.allocate(capacity: rows * lora.rank)
            defer { aT.deallocate() }
            adk_transpose(lora.a.pointer, Int64(lora.rank), Int64(rows), aT, Int64(lora.rank))
            GEMM.sgemm(
                m: rows, n: width, k: lora.rank, a: aT, lda: lora.rank, b: lora.scaledBTransposed.pointer,
                ldb: width, transposeB: false, beta: 1, c: out.baseAddress!, ldc: width)
        }
        return Tensor(shape: table.shape, storage: storage)
    }
}
