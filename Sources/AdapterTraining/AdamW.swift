import Foundation

/// AdamW as PyTorch's `torch.optim.AdamW` computes it (decoupled weight decay, bias-corrected moments), with
/// transformers' linear schedule with warm-up on the learning rate.
public struct AdamW: Sendable {
    /// Optimiser settings; the defaults are PEFT's and transformers' (weight decay as commonly set for LoRA).
    public struct Options: Sendable, Equatable {
        public var learningRate: Float = 1e-3
        public var beta1: Float = 0.9
        public var beta2: Float = 0.999
        public var epsilon: Float = 1e-8
        public var weightDecay: Float = 0.01
        /// Steps over which the learning rate rises linearly from 0.
        public var warmupSteps = 0
        /// Steps after which it has fallen linearly back to 0.
        public var totalSteps = 1

        /// The defaults.
        public init() {}
    }

    /// The settings in use.
    public let options: Options
    private var first: [[Float]]
    private var second: [[Float]]
    /// Optimiser steps taken.
    public private(set) var step = 0

    /// An optimiser for `parameters` (their moments start at zero).
    public init(parameters: [TrainableAdapter.Parameter], options: Options) {
        self.options = options
        first = parameters.map { [Float](repeating: 0, count: $0.values.count) }
        second = first
    }

    /// The learning rate of the next step (`get_linear_schedule_with_warmup`: 0 → lr over the warm-up, then
    /// linearly to 0 at `totalSteps`).
    public var learningRate: Float {
        let warmup = options.warmupSteps, total = options.totalSteps
        let factor: Float = step < warmup
            ? Float(step) / Float(max(1, warmup))
            : max(0, Float(total - step) / Float(max(1, total - warmup)))
        return options.learningRate * factor
    }

    /// Applies one step of `gradients` (same layout as `parameters`); the parameters at `frozen` stay as they are
    /// (no step, no weight decay).
    public mutating func apply(_ gradients: [[Float]], to parameters: inout [TrainableAdapter.Parameter], frozen: Set<Int> = []) {
        let lr = learningRate
        step += 1
        let b1 = options.beta1, b2 = options.beta2
        let correction1 = 1 - pow(b1, Float(step))
        let correction2Root = (1 - pow(b2, Float(step))).squareRoot()
        let stepSize = lr / correction1
        for index in parameters.indices where !frozen.contains(index) {
            let decay = parameters[index].decays ? 1 - lr * options.weightDecay : 1
            let gradient = gradients[index]
            parameters[index].values.withUnsafeMutableBufferPointer { p in
                first[index].withUnsafeMutableBufferPointer { m in
                    second[index].withUnsafeMutableBufferPointer { v in
                        for i in 0..<p.count {
                            let g = gradient[i]
                            p[i] *= decay
                            m[i] = b1 * m[i] + (1 - b1) * g
                            v[i] = b2 * v[i] + (1 - b2) * g * g
                            p[i] -= stepSize * m[i] / (v[i].squareRoot() / correction2Root + options.epsilon)
                        }
                    }
                }
            }
        }
    }
}

private func pow(_ base: Float, _ exponent: Float) -> Float {
    Float(Foundation.pow(Double(base), Double(exponent)))
}
