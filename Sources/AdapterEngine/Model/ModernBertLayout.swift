import Foundation

/// What sets a ModernBERT encoder apart from the post-norm BERT families, read from its `config.json`: pre-norm
/// blocks, rotary position embeddings with a base per attention kind, global attention on some layers and a sliding
/// window on the others, a gated (GeGLU) feed-forward block, and which biases exist.
public struct ModernBertLayout: Sendable, Equatable {
    /// How the sequence classifier pools the final rows before its head (`classifier_pooling`).
    public enum ClassifierPooling: String, Sendable, Equatable {
        /// The first row ([CLS]).
        case cls
        /// The mean of every row.
        case mean
    }

    /// Per layer: whether it attends within the sliding window (`sliding_attention`) rather than to every token.
    public var localLayers: [Bool]
    /// How many positions each way a token of a local layer sees (`local_attention / 2`).
    public var window: Int
    /// The rotary embeddings' base (`rope_theta`) on global and on local layers.
    public var globalRopeTheta: Double
    public var localRopeTheta: Double
    public var classifierPooling: ClassifierPooling
    /// Which layers carry biases (`attention_bias`, `mlp_bias`, `norm_bias`, `classifier_bias`).
    public var attentionBias: Bool
    public var mlpBias: Bool
    public var normBias: Bool
    public var classifierBias: Bool

    /// Reads the layout from `raw`'s fields, refusing what this engine does not run (another activation, scaled
    /// rotary embeddings) by name.
    init(raw: [String: Any], layers: Int, path: String) throws(ModelError) {
        for field in ["hidden_activation", "classifier_activation"] {
            if let activation = raw[field] as? String, activation != "gelu" {
                throw .unsupported(file: path, field: field, value: activation)
            }
        }
        if let types = raw["layer_types"] as? [String] {
            guard types.count == layers else {
                throw .invalidConfig(file: path, reason: "layer_types lists \(types.count) layers, num_hidden_layers is \(layers)")
            }
            localLayers = try types.map { type throws(ModelError) -> Bool in
                switch type {
                case "full_attention": return false
                case "sliding_attention": return true
                default: throw .unsupported(file: path, field: "layer_types", value: type)
                }
            }
        } else {
            // Checkpoints from before `layer_types`: every n-th layer (from the first) is global.
            let every = (raw["global_attn_every_n_layers"] as? NSNumber)?.intValue ?? 3
            guard every > 0 else { throw .invalidConfig(file: path, reason: "global_attn_every_n_layers must be positive") }
            localLayers = (0..<layers).map { $0 % every != 0 }
        }
        let local = (raw["local_attention"] as? NSNumber)?.intValue ?? 128
        guard local >= 2 else { throw .invalidConfig(file: path, reason: "local_attention must be at least 2") }
        window = local / 2
        if let scaling = raw["rope_scaling"], !(scaling is NSNull) {
            throw .unsupported(file: path, field: "rope_scaling", value: "\(scaling)")
        }
        let parameters = raw["rope_parameters"] as? [String: Any] ?? [:]
        func theta(_ kind: String, legacy: String, default value: Double) throws(ModelError) -> Double {
            guard let entry = parameters[kind] as? [String: Any] else {
                return (raw[legacy] as? NSNumber)?.doubleValue ?? value
            }
            if let type = entry["rope_type"] as? String, type != "default" {
                throw .unsupported(file: path, field: "rope_parameters.\(kind).rope_type", value: type)
            }
            return (entry["rope_theta"] as? NSNumber)?.doubleValue ?? (raw[legacy] as? NSNumber)?.doubleValue ?? value
        }
        globalRopeTheta = try theta("full_attention", legacy: "global_rope_theta", default: 160_000)
        localRopeTheta = try theta("sliding_attention", legacy: "local_rope_theta", default: 10_000)
        guard globalRopeTheta > 0, localRopeTheta > 0 else { throw .invalidConfig(file: path, reason: "rope_theta must be positive") }
        let pooling = raw["classifier_pooling"] as? String ?? "cls"
        guard let classifierPooling = ClassifierPooling(rawValue: pooling) else {
            throw .unsupported(file: path, field: "classifier_pooling", value: pooling)
        }
        self.classifierPooling = classifierPooling
        attentionBias = raw["attention_bias"] as? Bool ?? false
        mlpBias = raw["mlp_bias"] as? Bool ?? false
        normBias = raw["norm_bias"] as? Bool ?? false
        classifierBias = raw["classifier_bias"] as? Bool ?? false
    }

    /// The rotary tables of one attention kind, `[positions, headSize]` each: `cos` and `sin` of
    /// `position · θ^(−2i/headSize)`, the frequencies repeated over both halves (as transformers builds them, in
    /// single precision).
    public static func rotaryTables(theta: Double, headSize: Int, positions: Int) -> (cos: [Float], sin: [Float]) {
        let half = headSize / 2
        let inverse = (0..<half).map { Float(1 / pow(theta, Double(2 * $0) / Double(headSize))) }
        var cosines = [Float](repeating: 0, count: positions * headSize)
        var sines = cosines
        for position in 0..<positions {
            for i in 0..<half {
                let angle = Float(position) * inverse[i]
                let (c, s) = (Float(cos(Double(angle))), Float(sin(Double(angle))))
                cosines[position * headSize + i] = c
                cosines[position * headSize + half + i] = c
                sines[position * headSize + i] = s
                sines[position * headSize + half + i] = s
            }
        }
        return (cosines, sines)
    }
}
