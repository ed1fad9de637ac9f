import CEngineKernels

/// Self-attention of one layer: the Q, K and V product with every adapter method's terms, then the attention kernel
/// (with ModernBERT's rotary embeddings and sliding window where the layer has them).
extension ForwardPass {
    /// Q, K and V of `input` into the batch's `qkv` rows, as one product: each slot's LoRA terms land in its third of
    /// the row (ModernBERT's fused `attn.Wqkv` is the query slot, its terms as wide as all three).
    func queryKeyValue(
        _ layer: PreparedLinear, input: UnsafeMutablePointer<Float>, adapters: [[LoRAWeights?]?], scalings: [[IA3Scaling?]?],
        kroneckers: [[KroneckerDelta?]?], batch: Batch
    ) {
        let hidden = config.hiddenSize
        // Q, K, V: one product; each slot's LoRA terms land in its third of the row.
        let qkvWidth = 3 * hidden
        let qkvLoRA = [LinearSlot.query, .key, .value].enumerated().compactMap { column, slot in
            adapters.contains { $0?[slot.rawValue] != nil } ? (column * hidden, slot) : nil
        }
        product(layer, input: input, into: batch.qkv, batch: batch)
        if layer.isQuantized, qkvLoRA.count == 2, batch.groups.count == 1,
           let one = adapters[0]?[qkvLoRA[0].1.rawValue], let two = adapters[0]?[qkvLoRA[1].1.rawValue],
           one.magnitudeScale == nil, two.magnitudeScale == nil {
            // One adapter's query and value terms (a single request's usual case): their down-projections
            // overlap the dequantisation.
            dequantizeWithLoRAPair(
                layer, output: batch.qkv, input: input, first: (qkvLoRA[0].0, one), second: (qkvLoRA[1].0, two), batch: batch)
        } else if layer.isQuantized, !qkvLoRA.isEmpty,
                  fusesLoRA(qkvLoRA.map(\.1), adapters: adapters, scalings: scalings, kroneckers: kroneckers) {
            // The terms' up-projections in the dequantising epilogue: no pass over the product of their own.
            let terms = loraTerms(qkvLoRA, adapters: adapters, input: input, width: hidden, batch: batch)
            epilogue(.bias, layer: layer, output: batch.qkv, dequantize: true, bias: true, terms: terms, batch: batch)
        } else {
            if layer.isQuantized {
                epilogue(.bias, layer: layer, output: batch.qkv, dequantize: true, bias: true, batch: batch)
            }
            // Up to two terms over the same rows (query and value, as most adapters have) per pass of the team.
            for start in stride(from: 0, to: qkvLoRA.count, by: 2) {
                addLoRA(
                    Array(qkvLoRA[start..<min(start + 2, qkvLoRA.count)]), adapters: adapters, input: input, width: hidden,
                    output: batch.qkv, ldy: qkvWidth, batch: batch)
            }
            for (column, slot) in qkvLoRA {
                // In FP32 the attention kernel adds the bias later; the INT8 epilogue above has added it.
                applyDoRA(
                    slot: slot, adapters: adapters, output: batch.qkv + column, ldy: qkvWidth,
                    bias: layer.isQuantized ? UnsafePointer(layer.bias + column) : nil, batch: batch)
            }
        }
        for (column, slot) in [(0, LinearSlot.query), (hidden, .key), (2 * hidden, .value)] {
            addKronecker(slot: slot, kroneckers: kroneckers, input: input, output: batch.qkv + column, ldy: qkvWidth, batch: batch)
            scaleOutputs(
                slot: slot, scalings: scalings, output: batch.qkv + column, ldy: qkvWidth,
                bias: layer.bias + column, biasAdded: layer.isQuantized, batch: batch)
        }
    }

    /// `softmax(QKᵀ/√d)·V` per sequence and head into the batch's `context` rows; on ModernBERT with rotary
    /// embeddings of the layer's kind and, on its local layers, the sliding window.
    func attention(layerIndex: Int, layer: ExecutionPlan.Layer, starts: [Int32], lengths: [Int32], rotary: RotaryTables?, batch: Batch) {
        let hidden = config.hiddenSize
        let local = config.modernBERT?.localLayers[layerIndex] ?? false
        let window = local ? config.modernBERT!.window : 0
        let scale = 1 / Float(config.headSize).squareRoot()
        // In INT8 the dequantising epilogue has added the bias already.
        let bias = layer.queryKeyValue.isQuantized ? nil : UnsafePointer(layer.queryKeyValue.bias)
        func run(_ cos: UnsafePointer<Float>?, _ sin: UnsafePointer<Float>?) {
            adk_attention(
                plan.path.kernelISA, batch.qkv, Int64(3 * hidden), bias, starts, lengths, Int64(starts.count),
                Int64(config.numAttentionHeads), Int64(config.headSize), scale, batch.context, Int64(hidden), cos, sin, Int64(window))
        }
        guard let rotary else { return run(nil, nil) }
        let tables = local ? rotary.local : rotary.global
        tables.cos.withUnsafeBufferPointer { cos in
            tables.sin.withUnsafeBufferPointer { sin in run(cos.baseAddress, sin.baseAddress) }
        }
    }
}
