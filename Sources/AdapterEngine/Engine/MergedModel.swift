import COpenBLAS

/// Merged mode for a device that serves a single adapter: `W' = W + s·B·A` folded into private copies of the
/// adapted weights, so inference costs exactly the base model's. The shared base weights are not touched.
public struct MergedModel: Sendable {
    /// The base model with merged weights.
    public let model: BertModel
    /// The adapter's head, with no LoRA pairs left to apply.
    public let adapter: LoRAAdapter

    /// Merges `adapter` into a copy of the weights of each module it adapts.
    public init(base: BertModel, adapter: LoRAAdapter) {
        var weights = base.weights
        for (module, lora) in adapter.modules {
            switch module {
            case .embedding(let table):
                weights.embeddings[table.rawValue] = Self.mergedEmbedding(weights.embeddings[table.rawValue], lora)
            case .linear(let layer, let slot):
                weights.layers[layer][slot] = Self.merged(weights.layers[layer][slot], lora)
            case .pooler, .classifier:
                break
            }
        }
        // The pooler this adapter runs with: its own saved pooler or the base one, plus its LoRA pair.
        if let pooler = adapter.head?.pooler ?? weights.pooler {
            weights.pooler = adapter.pooler.map { Self.merged(pooler, $0) } ?? pooler
        }
        let head = LoRAAdapter(
            name: adapter.name, config: adapter.config,
            layers: adapter.layers.map { $0.map { _ in nil } }, embeddings: adapter.embeddings.map { _ in nil }, pooler: nil,
            head: adapter.head.map { ClassifierHead(classifier: $0.classifier, pooler: nil, labels: $0.labels) })
        model = BertModel(directory: base.directory, config: base.config, weights: weights, tokenizer: base.tokenizer)
        self.adapter = head
    }

    /// Runs `texts` through the merged model.
    public func run(_ texts: [String]) -> [InferenceResult] {
        InferenceEngine(model: model).run(texts, adapter: adapter)
    }

    static func merged(_ linear: LinearWeights, _ lora: LoRAWeights) -> LinearWeights {
        let outputs = linear.outFeatures, inputs = linear.inFeatures
        let weight = FloatStorage(count: outputs * inputs) { out in
            out.baseAddress!.update(from: linear.weight.pointer, count: outputs * inputs)
            // W'[out × in] += s · B[out × r] · A[r × in]
            cblas_sgemm(
                CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(outputs), Int32(inputs), Int32(lora.rank),
                lora.scaling, lora.b.pointer, Int32(lora.rank), lora.a.pointer, Int32(inputs), 1, out.baseAddress!, Int32(inputs))
        }
        return LinearWeights(weight: Tensor(shape: linear.weight.shape, storage: weight), bias: linear.bias)
    }

    static func mergedEmbedding(_ table: Tensor, _ lora: LoRAWeights) -> Tensor {
        let rows = table.shape[0], width = table.shape[1]
        let storage = FloatStorage(count: rows * width) { out in
            out.baseAddress!.update(from: table.pointer, count: rows * width)
            // E'[rows × dim] += s · Aᵀ[rows × r] · Bᵀ[r × dim]
            cblas_sgemm(
                CblasRowMajor, CblasTrans, CblasTrans, Int32(rows), Int32(width), Int32(lora.rank),
                lora.scaling, lora.a.pointer, Int32(rows), lora.b.pointer, Int32(lora.rank), 1, out.baseAddress!, Int32(width))
        }
        return Tensor(shape: table.shape, storage: storage)
    }
}
