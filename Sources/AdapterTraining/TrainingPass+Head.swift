import AdapterEngine
import Foundation

/// The classifier every family's head ends in, and the mean cross-entropy over it.
extension TrainingPass {
    /// `logits = features · Wᵀ + b` for `count` sequences, the mean cross-entropy against `labels`, and its gradient
    /// with respect to the logits.
    func classify(_ features: UnsafePointer<Float>, count: Int, labels: [Int]) -> (logits: [[Float]], loss: Float, dLogits: Buffer) {
        let hidden = model.config.hiddenSize
        let outputs = adapter.labels.count
        let weight = adapter.parameters[adapter.classifierWeight].values
        let bias = adapter.parameters[adapter.classifierBias].values
        var logits = [[Float]](repeating: [], count: count)
        let dLogits = Buffer(count * outputs, meter: meter)
        var loss: Double = 0
        for sequence in 0..<count {
            var row = bias
            for label in 0..<outputs {
                var sum: Float = 0
                for i in 0..<hidden { sum += features[sequence * hidden + i] * weight[label * hidden + i] }
                row[label] += sum
            }
            logits[sequence] = row
            let maximum = row.max()!
            let exps = row.map { expf($0 - maximum) }
            let total = exps.reduce(0, +)
            loss += Double(-(row[labels[sequence]] - maximum - logf(total)))
            for label in 0..<outputs {
                dLogits.pointer[sequence * outputs + label] = (exps[label] / total - (label == labels[sequence] ? 1 : 0)) / Float(count)
            }
        }
        return (logits, Float(loss / Double(count)), dLogits)
    }

    /// Back through the classifier: adds `dW = dLogitsᵀ · features` and `db = Σ dLogits` to `gradients` and returns
    /// the gradient of the features.
    func classifierBackward(_ dLogits: Buffer, features: UnsafePointer<Float>, count: Int, gradients: inout [[Float]]) -> Buffer {
        let hidden = model.config.hiddenSize
        let outputs = adapter.labels.count
        let weight = adapter.parameters[adapter.classifierWeight].values
        let dFeatures = Buffer(count * hidden, meter: meter)
        for sequence in 0..<count {
            for label in 0..<outputs {
                let g = dLogits.pointer[sequence * outputs + label]
                gradients[adapter.classifierBias][label] += g
                for i in 0..<hidden {
                    gradients[adapter.classifierWeight][label * hidden + i] += g * features[sequence * hidden + i]
                    dFeatures.pointer[sequence * hidden + i] += g * weight[label * hidden + i]
                }
            }
        }
        return dFeatures
    }
}
