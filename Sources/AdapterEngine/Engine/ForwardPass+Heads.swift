import CEngineKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The heads after the encoder: sequence classifiers on the pooled rows, token classifiers on every token.
extension ForwardPass {
    /// A token classifier on each of one sequence's `count` final hidden rows at `rows`.
    func classifyTokens(_ rows: UnsafePointer<Float>, count: Int, head: ClassifierHead) -> InferenceOutput {
        let labels = head.classifier.outFeatures
        let hidden = config.hiddenSize
        var logits = [Float](repeating: 0, count: count * labels)
        if let pooler = head.pooler {
            // ModernBERT's head runs on every token before the classifier.
            var transformed = [Float](repeating: 0, count: count * hidden)
            transformed.withUnsafeMutableBufferPointer { buffer in
                let y = buffer.baseAddress!
                Kernels.linear(pooler, x: rows, ldx: hidden, rows: count, y: y, ldy: hidden)
                activate(y, count: count, head: head)
                logits.withUnsafeMutableBufferPointer { out in
                    Kernels.linear(head.classifier, x: y, ldx: hidden, rows: count, y: out.baseAddress!, ldy: labels)
                }
            }
        } else {
            logits.withUnsafeMutableBufferPointer { out in
                Kernels.linear(head.classifier, x: rows, ldx: hidden, rows: count, y: out.baseAddress!, ldy: labels)
            }
        }
        let perToken = (0..<count).map { Array(logits[($0 * labels)..<(($0 + 1) * labels)]) }
        let names = perToken.map { values in head.labels[values.indices.max { values[$0] < values[$1] } ?? 0] }
        return .tokenClassification(logits: perToken, labels: names)
    }

    /// The head's dense layer (BERT's pooler, RoBERTa's `classifier.dense`, DistilBERT's `pre_classifier`, ModernBERT's
    /// `head.dense`) on each sequence's first row or the mean of its rows, its activation (and ModernBERT's norm),
    /// then the adapter's classifier (FP32 in both precisions).
    func classify(
        group: Group, head: ClassifierHead, lora: LoRAWeights?, offsets: [Int], lengths: [Int], batch: Batch
    ) -> [InferenceOutput] {
        let hidden = config.hiddenSize
        let count = group.sequences.count
        let cls = batch.pooled
        let pooled = batch.pooled + count * hidden
        for (row, sequence) in group.sequences.enumerated() {
            let rows = batch.x + offsets[sequence] * hidden
            switch head.pooling {
            case .first:
                (cls + row * hidden).update(from: rows, count: hidden)
            case .mean:
                let mean = SentencePooling(mode: .mean, normalize: false).pool(rows, length: lengths[sequence], width: hidden)
                (cls + row * hidden).update(from: mean, count: hidden)
            }
        }
        // BertWeights without a pooler only reach here with the adapter's own (checked when loading).
        let poolerWeights = head.pooler ?? weights.pooler!
        Kernels.linear(poolerWeights, x: cls, ldx: hidden, rows: count, y: pooled, ldy: hidden)
        if let lora {
            Kernels.addLoRA(
                [Kernels.LoRAGroup(rows: 0..<count, terms: [(lora, 0)])], x: cls, ldx: hidden, y: pooled, ldy: hidden,
                scratch: batch.loraScratch, isa: plan.path.kernelISA)
            if let scale = lora.magnitudeScale?.pointer {
                // DoRA: the bias is in already and is not rescaled.
                let bias = poolerWeights.bias?.pointer
                for row in 0..<count {
                    let y = pooled + row * hidden
                    for j in 0..<hidden { y[j] = scale[j] * (y[j] - (bias?[j] ?? 0)) + (bias?[j] ?? 0) }
                }
            }
        }
        activate(pooled, count: count, head: head)
        let labels = head.classifier.outFeatures
        var logits = [Float](repeating: 0, count: count * labels)
        logits.withUnsafeMutableBufferPointer { out in
            Kernels.linear(head.classifier, x: pooled, ldx: hidden, rows: count, y: out.baseAddress!, ldy: labels)
        }
        return (0..<count).map { row in
            let values = Array(logits[(row * labels)..<((row + 1) * labels)])
            var best = 0
            for index in values.indices where values[index] > values[best] { best = index }
            return .classification(logits: values, labelIndex: best, label: head.labels[best])
        }
    }

    /// The head's activation on `count` rows after its pooler, then its norm when it has one.
    private func activate(_ rows: UnsafeMutablePointer<Float>, count: Int, head: ClassifierHead) {
        let hidden = config.hiddenSize
        switch head.activation {
        case .tanh: for i in 0..<(count * hidden) { rows[i] = tanhf(rows[i]) }
        case .relu: for i in 0..<(count * hidden) { rows[i] = max(rows[i], 0) }
        case .gelu: for i in 0..<(count * hidden) { rows[i] = 0.5 * rows[i] * (1 + erff(rows[i] * 0.707_106_781_186_547_5)) }
        }
        guard let norm = head.norm else { return }
        adk_epilogue(
            plan.path.kernelISA, ADK_EPILOGUE_BIAS_RESIDUAL_NORM, rows, Int64(hidden), Int64(count), Int64(hidden),
            nil, nil, nil, 0, norm.gamma.pointer, norm.beta.pointer, head.normEps, nil)
    }
}
