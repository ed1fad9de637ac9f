import AdapterEngine
import Foundation

/// One forward and backward pass of a packed batch through the frozen base model with a trainable adapter: the
/// mean cross-entropy loss, the logits, and the gradient of every trainable tensor. No gradient buffer exists for
/// the base weights; only the activations the backward pass reads are kept.
///
/// Sequences are stacked without padding (as in inference) and attention runs per sequence. Dropout is off (the
/// adapters are small and the examples few; PEFT's `lora_dropout` is saved as 0).
struct TrainingPass {
    let model: BertModel
    let adapter: TrainableAdapter
    /// Called between layers, forward and backward: a worker's training waits there while requests are served.
    var pause: () -> Void = {}
    /// Counts the bytes the pass's buffers hold.
    let meter = MemoryMeter()

    /// What a pass returns.
    struct Result {
        var loss: Float
        /// `[sequence][label]`.
        var logits: [[Float]]
        /// One per `adapter.parameters`, same layout; empty when the pass ran without `backward`.
        var gradients: [[Float]]
        /// The most bytes the pass's activations and scratch held at once (gradients not included).
        var peakBytes: Int
    }

    /// Activations of one layer that the backward pass reads.
    private final class LayerCache {
        let input: Buffer
        let qkv: Buffer
        let probabilities: Buffer
        let context: Buffer
        let attentionNormed: Buffer
        let attentionInverseStd: Buffer
        let attentionOutput: Buffer
        let preActivation: Buffer
        let activation: Buffer
        let outputNormed: Buffer
        let outputInverseStd: Buffer
        /// `input · Aᵀ` of each adapted slot, `[rows × rank]`.
        var down: [Buffer?]

        init(rows: Int, hidden: Int, intermediate: Int, probabilities: Int, meter: MemoryMeter) {
            input = Buffer(rows * hidden, meter: meter)
            qkv = Buffer(rows * 3 * hidden, meter: meter)
            self.probabilities = Buffer(probabilities, meter: meter)
            context = Buffer(rows * hidden, meter: meter)
            attentionNormed = Buffer(rows * hidden, meter: meter)
            attentionInverseStd = Buffer(rows, meter: meter)
            attentionOutput = Buffer(rows * hidden, meter: meter)
            preActivation = Buffer(rows * intermediate, meter: meter)
            activation = Buffer(rows * intermediate, meter: meter)
            outputNormed = Buffer(rows * hidden, meter: meter)
            outputInverseStd = Buffer(rows, meter: meter)
            down = Array(repeating: nil, count: LinearSlot.allCases.count)
        }
    }

    /// Bytes of activations a batch of `lengths` keeps, for the memory budget.
    static func activationBytes(lengths: [Int], config: BertConfig, rank: Int, slots: Int) -> Int {
        let rows = lengths.reduce(0, +)
        let hidden = config.hiddenSize, inner = config.intermediateSize
        let probabilities = lengths.reduce(0) { $0 + $1 * $1 } * config.numAttentionHeads
        let perLayer = rows * (hidden * 8 + inner * 2 + 2 + rank * slots) + probabilities
        // Gradient buffers of the same order as one layer's activations, plus the attention scratch.
        return 4 * (perLayer * (config.numHiddenLayers + 2) + 3 * 128 * 128)
    }

    /// Runs `batch` (token ids and label index per sequence); with `backward`, also the gradients.
    func run(_ batch: [(ids: [Int32], label: Int)], backward: Bool = true) -> Result {
        if model.config.modernBERT != nil { return runPreNorm(batch, backward: backward) }
        let config = model.config
        let weights = model.weights
        let hidden = config.hiddenSize, inner = config.intermediateSize
        let heads = config.numAttentionHeads
        let lengths = batch.map { $0.ids.count }
        let packing = Packing(lengths: lengths, heads: heads)
        let (starts, rows, probabilityCount) = (packing.starts, packing.rows, packing.probabilityCount)
        let eps = config.layerNormEps

        // Embeddings (frozen, no LoRA here): word + position + token type, then LayerNorm.
        var x = Buffer(rows * hidden, meter: meter)
        let tables = weights.embeddings.map(\.pointer)
        for (sequence, item) in batch.enumerated() {
            for (position, id) in item.ids.enumerated() {
                let out = x.pointer + (starts[sequence] + position) * hidden
                let word = tables[0] + Int(id) * hidden, place = tables[1] + (position + config.positionOffset) * hidden, type = tables[2]
                for i in 0..<hidden { out[i] = word[i] + place[i] + type[i] }
            }
        }
        let scratchNorm = Buffer(rows * hidden, meter: meter), scratchStd = Buffer(rows, meter: meter)
        Self.layerNorm(x.pointer, rows: rows, width: hidden, gamma: weights.embeddingNorm.gamma.pointer, beta: weights.embeddingNorm.beta.pointer, eps: eps, normed: scratchNorm.pointer, inverseStd: scratchStd.pointer)

        var caches: [LayerCache] = []
        for (layerIndex, layer) in weights.layers.enumerated() {
            pause()
            let cache = LayerCache(rows: rows, hidden: hidden, intermediate: inner, probabilities: probabilityCount, meter: meter)
            cache.input.pointer.update(from: x.pointer, count: rows * hidden)
            // Q, K, V with their LoRA terms.
            for (column, slot) in [LinearSlot.query, .key, .value].enumerated() {
                let out = cache.qkv.pointer + column * hidden
                layer[slot].apply(x: cache.input.pointer, ldx: hidden, rows: rows, y: out, ldy: 3 * hidden)
                cache.down[slot.rawValue] = addLoRA(layer: layerIndex, slot: slot, x: cache.input.pointer, ldx: hidden, rows: rows, y: out, ldy: 3 * hidden)
            }
            attention(qkv: cache.qkv.pointer, packing: packing, probabilities: cache.probabilities.pointer, context: cache.context.pointer)
            // Attention output, residual, LayerNorm.
            layer[.attentionOutput].apply(x: cache.context.pointer, ldx: hidden, rows: rows, y: cache.attentionOutput.pointer, ldy: hidden)
            cache.down[LinearSlot.attentionOutput.rawValue] = addLoRA(layer: layerIndex, slot: .attentionOutput, x: cache.context.pointer, ldx: hidden, rows: rows, y: cache.attentionOutput.pointer, ldy: hidden)
            let afterAttention = cache.attentionOutput.pointer
            for i in 0..<(rows * hidden) { afterAttention[i] += cache.input.pointer[i] }
            Self.layerNorm(afterAttention, rows: rows, width: hidden, gamma: layer.attentionNorm.gamma.pointer, beta: layer.attentionNorm.beta.pointer, eps: eps, normed: cache.attentionNormed.pointer, inverseStd: cache.attentionInverseStd.pointer)
            // Feed-forward: intermediate, GELU, output, residual, LayerNorm.
            layer[.intermediate].apply(x: afterAttention, ldx: hidden, rows: rows, y: cache.preActivation.pointer, ldy: inner)
            cache.down[LinearSlot.intermediate.rawValue] = addLoRA(layer: layerIndex, slot: .intermediate, x: afterAttention, ldx: hidden, rows: rows, y: cache.preActivation.pointer, ldy: inner)
            for i in 0..<(rows * inner) {
                let m = cache.preActivation.pointer[i]
                cache.activation.pointer[i] = 0.5 * m * (1 + erff(m * 0.70710678118654752440))
            }
            let next = Buffer(rows * hidden, meter: meter)
            layer[.output].apply(x: cache.activation.pointer, ldx: inner, rows: rows, y: next.pointer, ldy: hidden)
            cache.down[LinearSlot.output.rawValue] = addLoRA(layer: layerIndex, slot: .output, x: cache.activation.pointer, ldx: inner, rows: rows, y: next.pointer, ldy: hidden)
            for i in 0..<(rows * hidden) { next.pointer[i] += afterAttention[i] }
            Self.layerNorm(next.pointer, rows: rows, width: hidden, gamma: layer.outputNorm.gamma.pointer, beta: layer.outputNorm.beta.pointer, eps: eps, normed: cache.outputNormed.pointer, inverseStd: cache.outputInverseStd.pointer)
            caches.append(cache)
            x = next
        }

        // Head: a dense layer on the first token (BERT's pooler, frozen; RoBERTa's classifier.dense or DistilBERT's
        // pre_classifier, trained), tanh (DistilBERT: ReLU), then the classifier.
        let count = batch.count
        let relu = adapter.family == .distilbert
        let cls = Buffer(count * hidden, meter: meter), pooled = Buffer(count * hidden, meter: meter)
        for sequence in 0..<count { (cls.pointer + sequence * hidden).update(from: x.pointer + starts[sequence] * hidden, count: hidden) }
        let dense = headDense
        dense.weight.withUnsafeBufferPointer { weight in
            GEMM.sgemm(m: count, n: hidden, k: hidden, a: cls.pointer, lda: hidden, b: weight.baseAddress!, ldb: hidden, transposeB: true, beta: 0, c: pooled.pointer, ldc: hidden)
        }
        for sequence in 0..<count {
            for i in 0..<hidden {
                let value = pooled.pointer[sequence * hidden + i] + dense.bias[i]
                pooled.pointer[sequence * hidden + i] = relu ? max(value, 0) : tanhf(value)
            }
        }
        let (logits, meanLoss, dLogits) = classify(pooled.pointer, count: count, labels: batch.map(\.label))
        guard backward else { return Result(loss: meanLoss, logits: logits, gradients: [], peakBytes: meter.peak) }

        var gradients = adapter.parameters.map { [Float](repeating: 0, count: $0.values.count) }
        // Classifier, then back through the activation and the dense layer.
        let dPooled = classifierBackward(dLogits, features: pooled.pointer, count: count, gradients: &gradients)
        for i in 0..<(count * hidden) {
            dPooled.pointer[i] *= relu ? (pooled.pointer[i] > 0 ? 1 : 0) : 1 - pooled.pointer[i] * pooled.pointer[i]
        }
        denseBackward(dPooled, input: cls.pointer, count: count, gradients: &gradients)
        var dx = Buffer(rows * hidden, meter: meter)
        let dCLS = Buffer(count * hidden, meter: meter)
        dense.weight.withUnsafeBufferPointer { weight in
            GEMM.sgemm(m: count, n: hidden, k: hidden, a: dPooled.pointer, lda: hidden, b: weight.baseAddress!, ldb: hidden, transposeB: false, beta: 0, c: dCLS.pointer, ldc: hidden)
        }
        for sequence in 0..<count { (dx.pointer + starts[sequence] * hidden).update(from: dCLS.pointer + sequence * hidden, count: hidden) }

        let maxLength = lengths.max() ?? 1
        let dScores = Buffer(maxLength * maxLength, meter: meter)
        for layerIndex in weights.layers.indices.reversed() {
            pause()
            let layer = weights.layers[layerIndex]
            let cache = caches[layerIndex]
            // Output LayerNorm: dx is the gradient of the layer's output.
            let dSum = Buffer(rows * hidden, meter: meter)
            Self.layerNormBackward(dx.pointer, rows: rows, width: hidden, gamma: layer.outputNorm.gamma.pointer, normed: cache.outputNormed.pointer, inverseStd: cache.outputInverseStd.pointer, into: dSum.pointer)
            // Feed-forward back to the attention block's output (residual plus the intermediate path).
            let dAttention = Buffer(rows * hidden, meter: meter)
            dAttention.pointer.update(from: dSum.pointer, count: rows * hidden)
            let dActivation = Buffer(rows * inner, meter: meter)
            backwardLinear(layer[.output], layer: layerIndex, slot: .output, dY: dSum.pointer, ldy: hidden, x: cache.activation.pointer, ldx: inner, rows: rows, dX: dActivation.pointer, lddx: inner, down: cache.down[LinearSlot.output.rawValue], gradients: &gradients)
            for i in 0..<(rows * inner) {
                let m = cache.preActivation.pointer[i]
                let cdf = 0.5 * (1 + erff(m * 0.70710678118654752440))
                let pdf = expf(-0.5 * m * m) * 0.39894228040143267794
                dActivation.pointer[i] *= cdf + m * pdf
            }
            let afterAttention = cache.attentionOutput.pointer
            backwardLinear(layer[.intermediate], layer: layerIndex, slot: .intermediate, dY: dActivation.pointer, ldy: inner, x: afterAttention, ldx: hidden, rows: rows, dX: dAttention.pointer, lddx: hidden, down: cache.down[LinearSlot.intermediate.rawValue], gradients: &gradients)
            // Attention LayerNorm, then the attention output product.
            let dAttentionSum = Buffer(rows * hidden, meter: meter)
            Self.layerNormBackward(dAttention.pointer, rows: rows, width: hidden, gamma: layer.attentionNorm.gamma.pointer, normed: cache.attentionNormed.pointer, inverseStd: cache.attentionInverseStd.pointer, into: dAttentionSum.pointer)
            let dInput = Buffer(rows * hidden, meter: meter)
            dInput.pointer.update(from: dAttentionSum.pointer, count: rows * hidden)
            let dContext = Buffer(rows * hidden, meter: meter)
            backwardLinear(layer[.attentionOutput], layer: layerIndex, slot: .attentionOutput, dY: dAttentionSum.pointer, ldy: hidden, x: cache.context.pointer, ldx: hidden, rows: rows, dX: dContext.pointer, lddx: hidden, down: cache.down[LinearSlot.attentionOutput.rawValue], gradients: &gradients)
            let dQKV = Buffer(rows * 3 * hidden, meter: meter)
            attentionBackward(
                qkv: cache.qkv.pointer, probabilities: cache.probabilities.pointer, dContext: dContext.pointer, packing: packing,
                dQKV: dQKV.pointer, scratch: dScores.pointer)
            for (column, slot) in [LinearSlot.query, .key, .value].enumerated() {
                backwardLinear(layer[slot], layer: layerIndex, slot: slot, dY: dQKV.pointer + column * hidden, ldy: 3 * hidden, x: cache.input.pointer, ldx: hidden, rows: rows, dX: dInput.pointer, lddx: hidden, down: cache.down[slot.rawValue], gradients: &gradients)
            }
            dx = dInput
            // Layers below the first adapted one need no gradient at all.
            if layerIndex <= firstAdaptedLayer { break }
        }
        return Result(loss: meanLoss, logits: logits, gradients: gradients, peakBytes: meter.peak)
    }

    /// The head's dense layer as `[out, in]` weights and a bias: the adapter's own (trained) or the base pooler.
    var headDense: (weight: [Float], bias: [Float]) {
        let hidden = model.config.hiddenSize
        let zeros = [Float](repeating: 0, count: hidden)
        if let (weight, bias) = adapter.headDense {
            return (adapter.parameters[weight].values, bias.map { adapter.parameters[$0].values } ?? zeros)
        }
        let pooler = model.weights.pooler!
        return (pooler.weight.storage.values, pooler.bias?.storage.values ?? zeros)
    }

    /// Back through the head's own dense layer, when it is trained: `dW += dPreᵀ · input`, `db += Σ dPre`.
    func denseBackward(_ dPre: Buffer, input: UnsafePointer<Float>, count: Int, gradients: inout [[Float]]) {
        guard let (weight, bias) = adapter.headDense else { return }
        let hidden = model.config.hiddenSize
        gradients[weight].withUnsafeMutableBufferPointer { dW in
            GEMM.sgemm(m: hidden, n: hidden, k: count, a: dPre.pointer, lda: hidden, transposeA: true, b: input, ldb: hidden, transposeB: false, beta: 1, c: dW.baseAddress!, ldc: hidden)
        }
        guard let bias else { return }
        for sequence in 0..<count {
            for i in 0..<hidden { gradients[bias][i] += dPre.pointer[sequence * hidden + i] }
        }
    }

    var firstAdaptedLayer: Int {
        adapter.pairs.firstIndex { row in row.contains { $0 != nil } } ?? 0
    }

    // MARK: Products

    /// `y += s·(x·Aᵀ)·Bᵀ` when (layer, slot) is adapted; returns `x·Aᵀ` for the backward pass.
    func addLoRA(layer: Int, slot: LinearSlot, x: UnsafePointer<Float>, ldx: Int, rows: Int, y: UnsafeMutablePointer<Float>, ldy: Int) -> Buffer? {
        guard let pair = adapter.pairs[layer][slot.rawValue] else { return nil }
        let a = adapter.parameters[pair.a], b = adapter.parameters[pair.b]
        let rank = pair.rank, inputs = a.shape[1], outputs = b.shape[0]
        let down = Buffer(rows * rank, meter: meter)
        a.values.withUnsafeBufferPointer { a in
            GEMM.sgemm(m: rows, n: rank, k: inputs, a: x, lda: ldx, b: a.baseAddress!, ldb: inputs, transposeB: true, beta: 0, c: down.pointer, ldc: rank)
        }
        b.values.withUnsafeBufferPointer { b in
            GEMM.sgemm(m: rows, n: outputs, k: rank, alpha: pair.scaling, a: down.pointer, lda: rank, b: b.baseAddress!, ldb: rank, transposeB: true, beta: 1, c: y, ldc: ldy)
        }
        return down
    }

    /// Back through `y = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ`: adds `dY·W` (and the LoRA path) to `dX`, and the LoRA pair's
    /// gradients (`dB = s·dYᵀ·(x·Aᵀ)`, `dA = (s·dY·B)ᵀ·x`) to `gradients`.
    func backwardLinear(
        _ base: LinearWeights, layer: Int, slot: LinearSlot, dY: UnsafePointer<Float>, ldy: Int, x: UnsafePointer<Float>, ldx: Int,
        rows: Int, dX: UnsafeMutablePointer<Float>, lddx: Int, down: Buffer?, gradients: inout [[Float]]
    ) {
        GEMM.sgemm(m: rows, n: base.inFeatures, k: base.outFeatures, a: dY, lda: ldy, b: base.weight.pointer, ldb: base.inFeatures, transposeB: false, beta: 1, c: dX, ldc: lddx)
        guard let pair = adapter.pairs[layer][slot.rawValue], let down else { return }
        let rank = pair.rank, inputs = base.inFeatures, outputs = base.outFeatures
        let dDown = Buffer(rows * rank, meter: meter)
        adapter.parameters[pair.b].values.withUnsafeBufferPointer { b in
            GEMM.sgemm(m: rows, n: rank, k: outputs, alpha: pair.scaling, a: dY, lda: ldy, b: b.baseAddress!, ldb: rank, transposeB: false, beta: 0, c: dDown.pointer, ldc: rank)
        }
        gradients[pair.b].withUnsafeMutableBufferPointer { dB in
            GEMM.sgemm(m: outputs, n: rank, k: rows, alpha: pair.scaling, a: dY, lda: ldy, transposeA: true, b: down.pointer, ldb: rank, transposeB: false, beta: 1, c: dB.baseAddress!, ldc: rank)
        }
        gradients[pair.a].withUnsafeMutableBufferPointer { dA in
            GEMM.sgemm(m: rank, n: inputs, k: rows, a: dDown.pointer, lda: rank, transposeA: true, b: x, ldb: ldx, transposeB: false, beta: 1, c: dA.baseAddress!, ldc: inputs)
        }
        adapter.parameters[pair.a].values.withUnsafeBufferPointer { a in
            GEMM.sgemm(m: rows, n: inputs, k: rank, a: dDown.pointer, lda: rank, b: a.baseAddress!, ldb: inputs, transposeB: false, beta: 1, c: dX, ldc: lddx)
        }
    }

    // MARK: Element-wise steps

    /// In place: `x ← γ·(x − μ)/σ + β` per row; keeps the normalised rows and 1/σ for the backward pass.
    static func layerNorm(
        _ x: UnsafeMutablePointer<Float>, rows: Int, width: Int, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, eps: Float,
        normed: UnsafeMutablePointer<Float>, inverseStd: UnsafeMutablePointer<Float>
    ) {
        for row in 0..<rows {
            let values = x + row * width
            var mean: Float = 0
            for i in 0..<width { mean += values[i] }
            mean /= Float(width)
            var variance: Float = 0
            for i in 0..<width { variance += (values[i] - mean) * (values[i] - mean) }
            variance /= Float(width)
            let inverse = 1 / (variance + eps).squareRoot()
            inverseStd[row] = inverse
            for i in 0..<width {
                let n = (values[i] - mean) * inverse
                normed[row * width + i] = n
                values[i] = gamma[i] * n + beta[i]
            }
        }
    }

    /// `dZ = (1/σ)·(g − mean(g) − x̂·mean(g ⊙ x̂))` with `g = dY ⊙ γ`, per row.
    static func layerNormBackward(
        _ dY: UnsafePointer<Float>, rows: Int, width: Int, gamma: UnsafePointer<Float>, normed: UnsafePointer<Float>,
        inverseStd: UnsafePointer<Float>, into dZ: UnsafeMutablePointer<Float>
    ) {
        for row in 0..<rows {
            var meanG: Float = 0, meanGX: Float = 0
            for i in 0..<width {
                let g = dY[row * width + i] * gamma[i]
                meanG += g
                meanGX += g * normed[row * width + i]
            }
            meanG /= Float(width)
            meanGX /= Float(width)
            for i in 0..<width {
                let g = dY[row * width + i] * gamma[i]
                dZ[row * width + i] = inverseStd[row] * (g - meanG - normed[row * width + i] * meanGX)
            }
        }
    }

    static func softmaxRows(_ p: UnsafeMutablePointer<Float>, rows: Int, width: Int) {
        for row in 0..<rows {
            let values = p + row * width
            var maximum = -Float.infinity
            for i in 0..<width { maximum = max(maximum, values[i]) }
            var total: Float = 0
            for i in 0..<width {
                values[i] = expf(values[i] - maximum)
                total += values[i]
            }
            for i in 0..<width { values[i] /= total }
        }
    }
}
