/// Weighted blends of adapters: `Σ wᵢ·sᵢ·Bᵢ·Aᵢ` on every module any of them adapts, as PEFT's
/// `add_weighted_adapter(…, combination_type="cat")` builds it (the pairs side by side, rank Σ rᵢ, each `B`
/// scaled by its weight and scaling), and the classification heads blended with the same weights (PEFT leaves
/// `modules_to_save` alone; a head is linear, so its blend is the weighted sum of weights and biases).
extension LoRAAdapter {
    /// The blend of `parts` (adapter, weight), called `name`: one adapter the engine runs as any other, one group of
    /// rows in a batch. Refused, with the reason, when the parts cannot be blended exactly: DoRA (its magnitude
    /// normalises the whole update), IA³ (it multiplies, not adds), LoKr modules kept as Kronecker factors, heads
    /// with different labels, or some parts with a head and others without, or with and without their own pooler.
    public static func blend(_ parts: [(adapter: LoRAAdapter, weight: Float)], name: String) throws(AdapterError) -> LoRAAdapter {
        guard let first = parts.first?.adapter else { throw .blendRefused(blend: name, reason: "it names no adapter") }
        for (adapter, weight) in parts {
            guard weight.isFinite else { throw .blendRefused(blend: name, reason: "the weight of '\(adapter.name)' is \(weight)") }
            if adapter.config.useDoRA {
                throw .blendRefused(blend: name, reason: "'\(adapter.name)' is DoRA: its magnitude rescales the whole adapted weight, so its update does not add to another's")
            }
            if adapter.config.method == .ia3 {
                throw .blendRefused(blend: name, reason: "'\(adapter.name)' is IA³: it scales activations rather than adding an update")
            }
            if adapter.kroneckers.joined().contains(where: { $0 != nil }) {
                throw .blendRefused(blend: name, reason: "'\(adapter.name)' is LoKr with modules kept as Kronecker factors, which do not concatenate")
            }
            guard adapter.layers.count == first.layers.count else {
                throw .blendRefused(blend: name, reason: "'\(adapter.name)' and '\(first.name)' were loaded for different models")
            }
            guard adapter.labels == first.labels else {
                throw .blendRefused(blend: name, reason: "the heads of '\(first.name)' and '\(adapter.name)' have different labels (\(first.labels ?? []) and \(adapter.labels ?? []))")
            }
            guard adapter.head?.problemType == first.head?.problemType else {
                throw .blendRefused(blend: name, reason: "the heads of '\(first.name)' and '\(adapter.name)' read their outputs differently (problem_type)")
            }
            guard (adapter.head?.pooler == nil) == (first.head?.pooler == nil) else {
                throw .blendRefused(blend: name, reason: "'\(first.name)' and '\(adapter.name)' differ in whether they save their own pooler")
            }
        }
        let layers = first.layers.indices.map { layer in
            LinearSlot.allCases.map { slot in concatenated(parts.map { ($0.adapter.layers[layer][slot.rawValue], $0.weight) }) }
        }
        let embeddings = EmbeddingTable.allCases.map { table in concatenated(parts.map { ($0.adapter.embeddings[table.rawValue], $0.weight) }) }
        let pooler = concatenated(parts.map { ($0.adapter.pooler, $0.weight) })
        var head: ClassifierHead?
        if let firstHead = first.head {
            // Everything but the weights (activation, pooling, per-token reading) is the family's, so the same.
            let heads = parts.map { ($0.adapter.head!, $0.weight) }
            var blended = firstHead
            blended.classifier = weighted(heads.map { ($0.0.classifier, $0.1) })
            blended.pooler = firstHead.pooler == nil ? nil : weighted(heads.map { ($0.0.pooler!, $0.1) })
            if firstHead.norm != nil {
                blended.norm = LayerNormWeights(
                    gamma: weighted(heads.map { ($0.0.norm!.gamma, $0.1) }), beta: weighted(heads.map { ($0.0.norm!.beta, $0.1) }))
            }
            head = blended
        }
        return LoRAAdapter(name: name, config: first.config, layers: layers, embeddings: embeddings, pooler: pooler, head: head)
    }

    /// The pairs side by side: `A` rows stacked, `s·Bᵀ` rows stacked with each part's weight; nil when none adapts
    /// the module.
    private static func concatenated(_ terms: [(LoRAWeights?, Float)]) -> LoRAWeights? {
        let present = terms.compactMap { term in term.0.map { ($0, term.1) } }
        guard let shape = present.first?.0 else { return nil }
        let rank = present.reduce(0) { $0 + $1.0.rank }
        let (inputs, outputs) = (shape.inFeatures, shape.outFeatures)
        let a = Tensor(shape: [rank, inputs], storage: FloatStorage(count: rank * inputs) { out in
            var offset = 0
            for (pair, _) in present {
                (out.baseAddress! + offset).update(from: pair.a.pointer, count: pair.rank * inputs)
                offset += pair.rank * inputs
            }
        })
        let bt = Tensor(shape: [rank, outputs], storage: FloatStorage(count: rank * outputs) { out in
            var offset = 0
            for (pair, weight) in present {
                for index in 0..<(pair.rank * outputs) { out[offset + index] = weight * pair.scaledBTransposed.pointer[index] }
                offset += pair.rank * outputs
            }
        })
        return LoRAWeights(a: a, scaledBTransposed: bt)
    }

    /// `Σ wᵢ·layerᵢ`, weights and biases.
    private static func weighted(_ layers: [(LinearWeights, Float)]) -> LinearWeights {
        let weight = weighted(layers.map { ($0.0.weight, $0.1) })
        let biases = layers.compactMap { layer in layer.0.bias.map { ($0, layer.1) } }
        return LinearWeights(weight: weight, bias: layers[0].0.bias == nil ? nil : weighted(biases))
    }

    /// `Σ wᵢ·tensorᵢ` (all of one shape).
    private static func weighted(_ tensors: [(Tensor, Float)]) -> Tensor {
        let count = tensors[0].0.count
        return Tensor(shape: tensors[0].0.shape, storage: FloatStorage(count: count) { out in
            out.initialize(repeating: 0)
            for (tensor, w) in tensors {
                for index in 0..<count { out[index] += w * tensor.pointer[index] }
            }
        })
    }
}
