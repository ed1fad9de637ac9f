import Foundation

/// One stage of an input router: features from the base model's first `layers` layers over the first
/// `maxTokens` wordpieces, standardised, then a linear softmax classifier. A stage answers when its top
/// probability reaches `threshold`; otherwise the next stage decides.
public struct RouterStage: Sendable, Equatable {
    /// What the stage computes, as `router.json` records it.
    public struct Features: Codable, Sendable, Equatable, Hashable {
        /// Base-model layers run before pooling (0: the embedding output).
        public var layers: Int
        /// Wordpieces used, `[CLS]` and `[SEP]` included (longer texts are cut, keeping `[SEP]`).
        public var maxTokens: Int
        /// Whether the pooled vector is L2-normalised before standardising.
        public var l2Normalize: Bool

        public init(layers: Int, maxTokens: Int, l2Normalize: Bool) {
            self.layers = layers
            self.maxTokens = maxTokens
            self.l2Normalize = l2Normalize
        }

        enum CodingKeys: String, CodingKey {
            case layers
            case maxTokens = "max_tokens"
            case l2Normalize = "l2_normalize"
        }

        /// `pooled`, L2-normalised when the stage asks for it: what standardisation applies to.
        public func normalise(_ pooled: [Float]) -> [Float] {
            guard l2Normalize else { return pooled }
            let norm = max(pooled.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
            return pooled.map { $0 / norm }
        }

        /// The ids the stage looks at: the first `maxTokens` of `ids`, ending with the original last id (`[SEP]`).
        public func truncate(_ ids: [Int32]) -> [Int32] {
            guard ids.count > maxTokens, maxTokens >= 2 else { return ids }
            return Array(ids.prefix(maxTokens - 1)) + [ids.last!]
        }
    }

    public var features: Features
    /// Answer when the top probability is at least this (the last stage always answers).
    public var threshold: Float
    /// Standardisation: `(x - mean) / scale` per dimension.
    public var mean: [Float]
    public var scale: [Float]
    /// Classifier: `weight` is classes × dimensions, row-major.
    public var weight: [Float]
    public var bias: [Float]

    public init(features: Features, threshold: Float, mean: [Float], scale: [Float], weight: [Float], bias: [Float]) {
        self.features = features
        self.threshold = threshold
        self.mean = mean
        self.scale = scale
        self.weight = weight
        self.bias = bias
    }

    /// Feature dimensions.
    public var dimensions: Int { mean.count }

    /// The standardised feature vector of a pooled hidden state.
    public func prepare(_ pooled: [Float]) -> [Float] {
        var values = features.normalise(pooled)
        for index in values.indices { values[index] = (values[index] - mean[index]) / scale[index] }
        return values
    }

    /// Class probabilities for a pooled hidden state.
    public func probabilities(_ pooled: [Float]) -> [Float] {
        let x = prepare(pooled)
        let classes = bias.count
        var logits = bias
        for k in 0..<classes {
            var sum: Float = 0
            let row = k * dimensions
            for j in 0..<dimensions { sum += weight[row + j] * x[j] }
            logits[k] += sum
        }
        return Self.softmax(logits)
    }

    static func softmax(_ logits: [Float]) -> [Float] {
        let top = logits.max() ?? 0
        let exps = logits.map { Foundation.exp($0 - top) }
        let total = exps.reduce(0, +)
        return exps.map { $0 / total }
    }
}
