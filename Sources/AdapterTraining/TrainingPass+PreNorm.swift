import AdapterEngine
import Foundation

/// ModernBERT's training pass: pre-norm blocks (the first without `attn_norm`), one Wqkv product whose adapter term
/// spans Q, K and V, rotary embeddings per attention kind, a sliding window on the local layers, a gated (GeGLU)
/// feed-forward layer, `final_norm`; then its head (pooled rows → `head.dense` → GELU → `head.norm` → classifier),
/// trained whole.
extension TrainingPass {
    /// Activations of one block that the backward pass reads.
    private final class PreNormCache {
        /// The attention's input: the stream itself (first block) or `attn_norm` of it.
        let attentionInput: Buffer
        let attentionNormed: Buffer?
        let attentionInverseStd: Buffer?
        /// Q and K after rotation, V, per row.
        let qkv: Buffer
        let probabilities: Buffer
        let context: Buffer
        let mlpInput: Buffer
        let mlpNormed: Buffer
        let mlpInverseStd: Buffer
        /// `mlp.Wi`'s output (input | gate) and the gated activations.
        let inner: Buffer
        let gated: Buffer
        var down: [Buffer?]

        init(rows: Int, hidden: Int, intermediate: Int, probabilities: Int, first: Bool, meter: MemoryMeter) {
            attentionInput = Buffer(rows * hidden, meter: meter)
            attentionNormed = first ? nil : Buffer(rows * hidden, meter: meter)
            attentionInverseStd = first ? nil : Buffer(rows, meter: meter)
            qkv = Buffer(rows * 3 * hidden, meter: meter)
            self.probabilities = Buffer(probabilities, meter: meter)
            context = Buffer(rows * hidden, meter: meter)
            mlpInput = Buffer(rows * hidden, meter: meter)
            mlpNormed = Buffer(rows * hidden, meter: meter)
            mlpInverseStd = Buffer(rows, meter: meter)
            inner = Buffer(rows * 2 * intermediate, meter: meter)
            gated = Buffer(rows * intermediate, meter: meter)
            down = Array(repeating: nil, count: LinearSlot.allCases.count)
        }
    }

    func runPreNorm(_ batch: [(ids: [Int32], label: Int)], backward: Bool) -> Result {
        let config = model.config
        let layout = config.modernBERT!
        let weights = model.weights
        let hidden = config.hiddenSize, inner = config.intermediateSize
        let heads = config.numAttentionHeads, headSize = config.headSize, half = headSize / 2
        let eps = config.layerNormEps
        let lengths = batch.map { $0.ids.count }
        let packing = Packing(lengths: lengths, heads: heads)
        let (starts, rows, probabilityCount) = (packing.starts, packing.rows, packing.probabilityCount)
        let longest = lengths.max() ?? 1
        let global = ModernBertLayout.rotaryTables(theta: layout.globalRopeTheta, headSize: headSize, positions: longest)
        let local = ModernBertLayout.rotaryTables(theta: layout.localRopeTheta, headSize: headSize, positions: longest)

        // Embeddings: the word table alone, then its norm (frozen).
        let x = Buffer(rows * hidden, meter: meter)
        let table = weights.embeddings[EmbeddingTable.word.rawValue].pointer
        for (sequence, item) in batch.enumerated() {
            for (position, id) in item.ids.enumerated() {
                (x.pointer + (starts[sequence] + position) * hidden).update(from: table + Int(id) * hidden, count: hidden)
            }
        }
        let scratchNormed = Buffer(rows * hidden, meter: meter), scratchStd = Buffer(rows, meter: meter)
        Self.layerNorm(x.pointer, rows: rows, width: hidden, gamma: weights.embeddingNorm.gamma.pointer, beta: weights.embeddingNorm.beta.pointer, eps: eps, normed: scratchNormed.pointer, inverseStd: scratchStd.pointer)

        var caches: [PreNormCache] = []
        for (layerIndex, layer) in weights.layers.enumerated() {
            pause()
            let first = layerIndex == 0
            let cache = PreNormCache(rows: rows, hidden: hidden, intermediate: inner, probabilities: probabilityCount, first: first, meter: meter)
            // The block's norms: `attentionNorm` is its mlp_norm, the previous block's `outputNorm` its attn_norm.
            cache.attentionInput.pointer.update(from: x.pointer, count: rows * hidden)
            if !first {
                let norm = weights.layers[layerIndex - 1].outputNorm
                Self.layerNorm(cache.attentionInput.pointer, rows: rows, width: hidden, gamma: norm.gamma.pointer, beta: norm.beta.pointer, eps: eps, normed: cache.attentionNormed!.pointer, inverseStd: cache.attentionInverseStd!.pointer)
            }
            let fused = layer.fusedQueryKeyValue!
            fused.apply(x: cache.attentionInput.pointer, ldx: hidden, rows: rows, y: cache.qkv.pointer, ldy: 3 * hidden)
            cache.down[LinearSlot.query.rawValue] = addLoRA(layer: layerIndex, slot: .query, x: cache.attentionInput.pointer, ldx: hidden, rows: rows, y: cache.qkv.pointer, ldy: 3 * hidden)
            let tables = layout.localLayers[layerIndex] ? local : global
            let window = layout.localLayers[layerIndex] ? layout.window : Int.max
            // Q and K rotated in place: x·cos + rotate_half(x)·sin.
            var rotated = [Float](repeating: 0, count: headSize)
            for sequence in batch.indices {
                for position in 0..<lengths[sequence] {
                    let row = cache.qkv.pointer + (starts[sequence] + position) * 3 * hidden
                    let c = position * headSize
                    for part in 0..<2 {
                        for head in 0..<heads {
                            let v = row + part * hidden + head * headSize
                            for d in 0..<half {
                                rotated[d] = v[d] * tables.cos[c + d] - v[d + half] * tables.sin[c + d]
                                rotated[d + half] = v[d + half] * tables.cos[c + d + half] + v[d] * tables.sin[c + d + half]
                            }
                            for d in 0..<headSize { v[d] = rotated[d] }
                        }
                    }
                }
            }
            attention(qkv: cache.qkv.pointer, packing: packing, window: window, probabilities: cache.probabilities.pointer, context: cache.context.pointer)
            // x += Wo·context; the feed-forward input is mlp_norm of that.
            let attentionOut = Buffer(rows * hidden, meter: meter)
            layer[.attentionOutput].apply(x: cache.context.pointer, ldx: hidden, rows: rows, y: attentionOut.pointer, ldy: hidden)
            cache.down[LinearSlot.attentionOutput.rawValue] = addLoRA(layer: layerIndex, slot: .attentionOutput, x: cache.context.pointer, ldx: hidden, rows: rows, y: attentionOut.pointer, ldy: hidden)
            for i in 0..<(rows * hidden) { x.pointer[i] += attentionOut.pointer[i] }
            cache.mlpInput.pointer.update(from: x.pointer, count: rows * hidden)
            Self.layerNorm(cache.mlpInput.pointer, rows: rows, width: hidden, gamma: layer.attentionNorm.gamma.pointer, beta: layer.attentionNorm.beta.pointer, eps: eps, normed: cache.mlpNormed.pointer, inverseStd: cache.mlpInverseStd.pointer)
            layer[.intermediate].apply(x: cache.mlpInput.pointer, ldx: hidden, rows: rows, y: cache.inner.pointer, ldy: 2 * inner)
            cache.down[LinearSlot.intermediate.rawValue] = addLoRA(layer: layerIndex, slot: .intermediate, x: cache.mlpInput.pointer, ldx: hidden, rows: rows, y: cache.inner.pointer, ldy: 2 * inner)
            for row in 0..<rows {
                for i in 0..<inner {
                    let a = cache.inner.pointer[row * 2 * inner + i], gate = cache.inner.pointer[row * 2 * inner + inner + i]
                    cache.gated.pointer[row * inner + i] = 0.5 * a * (1 + erff(a * 0.70710678118654752440)) * gate
                }
            }
            let mlpOut = Buffer(rows * hidden, meter: meter)
            layer[.output].apply(x: cache.gated.pointer, ldx: inner, rows: rows, y: mlpOut.pointer, ldy: hidden)
            cache.down[LinearSlot.output.rawValue] = addLoRA(layer: layerIndex, slot: .output, x: cache.gated.pointer, ldx: inner, rows: rows, y: mlpOut.pointer, ldy: hidden)
            for i in 0..<(rows * hidden) { x.pointer[i] += mlpOut.pointer[i] }
            caches.append(cache)
        }
        // final_norm (the last block's `outputNorm`).
        let finalNorm = weights.layers[weights.layers.count - 1].outputNorm
        let final = Buffer(rows * hidden, meter: meter), finalNormed = Buffer(rows * hidden, meter: meter), finalStd = Buffer(rows, meter: meter)
        final.pointer.update(from: x.pointer, count: rows * hidden)
        Self.layerNorm(final.pointer, rows: rows, width: hidden, gamma: finalNorm.gamma.pointer, beta: finalNorm.beta.pointer, eps: eps, normed: finalNormed.pointer, inverseStd: finalStd.pointer)

        // Head: pooled rows (mean or [CLS]) → head.dense → GELU → head.norm → classifier.
        let count = batch.count
        let mean = layout.classifierPooling == .mean
        let pooledInput = Buffer(count * hidden, meter: meter)
        for sequence in 0..<count {
            let out = pooledInput.pointer + sequence * hidden
            let first = final.pointer + starts[sequence] * hidden
            if mean {
                for row in 0..<lengths[sequence] {
                    for i in 0..<hidden { out[i] += first[row * hidden + i] }
                }
                for i in 0..<hidden { out[i] /= Float(lengths[sequence]) }
            } else {
                out.update(from: first, count: hidden)
            }
        }
        let dense = headDense
        let preActivation = Buffer(count * hidden, meter: meter)
        dense.weight.withUnsafeBufferPointer { weight in
            GEMM.sgemm(m: count, n: hidden, k: hidden, a: pooledInput.pointer, lda: hidden, b: weight.baseAddress!, ldb: hidden, transposeB: true, beta: 0, c: preActivation.pointer, ldc: hidden)
        }
        let features = Buffer(count * hidden, meter: meter), headNormed = Buffer(count * hidden, meter: meter), headStd = Buffer(count, meter: meter)
        for sequence in 0..<count {
            for i in 0..<hidden {
                let value = preActivation.pointer[sequence * hidden + i] + dense.bias[i]
                preActivation.pointer[sequence * hidden + i] = value
                features.pointer[sequence * hidden + i] = 0.5 * value * (1 + erff(value * 0.70710678118654752440))
            }
        }
        let (gammaIndex, betaIndex) = adapter.headNorm!
        let gamma = adapter.parameters[gammaIndex].values
        let beta = betaIndex.map { adapter.parameters[$0].values } ?? [Float](repeating: 0, count: hidden)
        Self.layerNorm(features.pointer, rows: count, width: hidden, gamma: gamma, beta: beta, eps: eps, normed: headNormed.pointer, inverseStd: headStd.pointer)
        let (logits, meanLoss, dLogits) = classify(features.pointer, count: count, labels: batch.map(\.label))
        guard backward else { return Result(loss: meanLoss, logits: logits, gradients: [], peakBytes: meter.peak) }

        var gradients = adapter.parameters.map { [Float](repeating: 0, count: $0.values.count) }
        let dFeatures = classifierBackward(dLogits, features: features.pointer, count: count, gradients: &gradients)
        // head.norm: dγ = Σ dY ⊙ x̂, dβ = Σ dY; then back through the norm, GELU and head.dense.
        for sequence in 0..<count {
            for i in 0..<hidden {
                gradients[gammaIndex][i] += dFeatures.pointer[sequence * hidden + i] * headNormed.pointer[sequence * hidden + i]
                if let betaIndex { gradients[betaIndex][i] += dFeatures.pointer[sequence * hidden + i] }
            }
        }
        let dActivation = Buffer(count * hidden, meter: meter)
        gamma.withUnsafeBufferPointer { gamma in
            Self.layerNormBackward(dFeatures.pointer, rows: count, width: hidden, gamma: gamma.baseAddress!, normed: headNormed.pointer, inverseStd: headStd.pointer, into: dActivation.pointer)
        }
        for i in 0..<(count * hidden) { dActivation.pointer[i] *= Self.geluDerivative(preActivation.pointer[i]) }
        denseBackward(dActivation, input: pooledInput.pointer, count: count, gradients: &gradients)
        let dPooled = Buffer(count * hidden, meter: meter)
        dense.weight.withUnsafeBufferPointer { weight in
            GEMM.sgemm(m: count, n: hidden, k: hidden, a: dActivation.pointer, lda: hidden, b: weight.baseAddress!, ldb: hidden, transposeB: false, beta: 0, c: dPooled.pointer, ldc: hidden)
        }
        let dFinal = Buffer(rows * hidden, meter: meter)
        for sequence in 0..<count {
            let gradient = dPooled.pointer + sequence * hidden
            if mean {
                for row in 0..<lengths[sequence] {
                    let out = dFinal.pointer + (starts[sequence] + row) * hidden
                    for i in 0..<hidden { out[i] = gradient[i] / Float(lengths[sequence]) }
                }
            } else {
                (dFinal.pointer + starts[sequence] * hidden).update(from: gradient, count: hidden)
            }
        }
        var dx = Buffer(rows * hidden, meter: meter)
        Self.layerNormBackward(dFinal.pointer, rows: rows, width: hidden, gamma: finalNorm.gamma.pointer, normed: finalNormed.pointer, inverseStd: finalStd.pointer, into: dx.pointer)

        let dScores = Buffer(longest * longest, meter: meter)
        for layerIndex in weights.layers.indices.reversed() {
            pause()
            let layer = weights.layers[layerIndex]
            let cache = caches[layerIndex]
            // x2 = x1 + Wo·gated(Wi·mlp_norm(x1)): dx flows to x1 directly and through the feed-forward branch.
            let dGated = Buffer(rows * inner, meter: meter)
            backwardLinear(layer[.output], layer: layerIndex, slot: .output, dY: dx.pointer, ldy: hidden, x: cache.gated.pointer, ldx: inner, rows: rows, dX: dGated.pointer, lddx: inner, down: cache.down[LinearSlot.output.rawValue], gradients: &gradients)
            let dInner = Buffer(rows * 2 * inner, meter: meter)
            for row in 0..<rows {
                for i in 0..<inner {
                    let a = cache.inner.pointer[row * 2 * inner + i], gate = cache.inner.pointer[row * 2 * inner + inner + i]
                    let g = dGated.pointer[row * inner + i]
                    dInner.pointer[row * 2 * inner + i] = g * gate * Self.geluDerivative(a)
                    dInner.pointer[row * 2 * inner + inner + i] = g * 0.5 * a * (1 + erff(a * 0.70710678118654752440))
                }
            }
            let dMLPInput = Buffer(rows * hidden, meter: meter)
            backwardLinear(layer[.intermediate], layer: layerIndex, slot: .intermediate, dY: dInner.pointer, ldy: 2 * inner, x: cache.mlpInput.pointer, ldx: hidden, rows: rows, dX: dMLPInput.pointer, lddx: hidden, down: cache.down[LinearSlot.intermediate.rawValue], gradients: &gradients)
            let dX1 = Buffer(rows * hidden, meter: meter)
            Self.layerNormBackward(dMLPInput.pointer, rows: rows, width: hidden, gamma: layer.attentionNorm.gamma.pointer, normed: cache.mlpNormed.pointer, inverseStd: cache.mlpInverseStd.pointer, into: dX1.pointer)
            for i in 0..<(rows * hidden) { dX1.pointer[i] += dx.pointer[i] }
            // x1 = x + Wo·attention(attention input).
            let dContext = Buffer(rows * hidden, meter: meter)
            backwardLinear(layer[.attentionOutput], layer: layerIndex, slot: .attentionOutput, dY: dX1.pointer, ldy: hidden, x: cache.context.pointer, ldx: hidden, rows: rows, dX: dContext.pointer, lddx: hidden, down: cache.down[LinearSlot.attentionOutput.rawValue], gradients: &gradients)
            let dQKV = Buffer(rows * 3 * hidden, meter: meter)
            attentionBackward(
                qkv: cache.qkv.pointer, probabilities: cache.probabilities.pointer, dContext: dContext.pointer, packing: packing,
                dQKV: dQKV.pointer, scratch: dScores.pointer)
            // Back through the rotation: its transpose.
            let tables = layout.localLayers[layerIndex] ? local : global
            var unrotated = [Float](repeating: 0, count: headSize)
            for sequence in batch.indices {
                for position in 0..<lengths[sequence] {
                    let row = dQKV.pointer + (starts[sequence] + position) * 3 * hidden
                    let c = position * headSize
                    for part in 0..<2 {
                        for head in 0..<heads {
                            let g = row + part * hidden + head * headSize
                            for d in 0..<half {
                                unrotated[d] = g[d] * tables.cos[c + d] + g[d + half] * tables.sin[c + d + half]
                                unrotated[d + half] = g[d + half] * tables.cos[c + d + half] - g[d] * tables.sin[c + d]
                            }
                            for d in 0..<headSize { g[d] = unrotated[d] }
                        }
                    }
                }
            }
            let dAttentionInput = Buffer(rows * hidden, meter: meter)
            backwardLinear(layer.fusedQueryKeyValue!, layer: layerIndex, slot: .query, dY: dQKV.pointer, ldy: 3 * hidden, x: cache.attentionInput.pointer, ldx: hidden, rows: rows, dX: dAttentionInput.pointer, lddx: hidden, down: cache.down[LinearSlot.query.rawValue], gradients: &gradients)
            let dInput = Buffer(rows * hidden, meter: meter)
            if layerIndex == 0 {
                dInput.pointer.update(from: dAttentionInput.pointer, count: rows * hidden)
            } else {
                let norm = weights.layers[layerIndex - 1].outputNorm
                Self.layerNormBackward(dAttentionInput.pointer, rows: rows, width: hidden, gamma: norm.gamma.pointer, normed: cache.attentionNormed!.pointer, inverseStd: cache.attentionInverseStd!.pointer, into: dInput.pointer)
            }
            for i in 0..<(rows * hidden) { dInput.pointer[i] += dX1.pointer[i] }
            dx = dInput
            if layerIndex <= firstAdaptedLayer { break }
        }
        return Result(loss: meanLoss, logits: logits, gradients: gradients, peakBytes: meter.peak)
    }

    /// d/dx of exact GELU: Φ(x) + x·φ(x).
    static func geluDerivative(_ x: Float) -> Float {
        0.5 * (1 + erff(x * 0.70710678118654752440)) + x * expf(-0.5 * x * x) * 0.39894228040143267794
    }
}
