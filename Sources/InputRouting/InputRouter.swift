import AdapterEngine
import Foundation

/// A lightweight classifier that picks the adapter for a request from its text before the main forward pass:
/// a cascade of `RouterStage`s over features of the base model's first layers, cheapest first. A directory of
/// two files — `router.json` (the description) and `router.safetensors` (standardisation and classifier
/// weights) — stored, versioned, pushed and rolled back like an adapter.
public struct InputRouter: Sendable, Equatable {
    /// The adapters it chooses between, in classifier order.
    public var labels: [String]
    /// Stages, cheapest first; the last one always answers.
    public var stages: [RouterStage]
    /// SHA-256 of the base model's `model.safetensors` the features were computed with.
    public var baseFingerprint: String
    /// How it was fitted, for people reading `router.json`.
    public var fit: FitSummary

    /// What `router.json` records about fitting.
    public struct FitSummary: Codable, Sendable, Equatable {
        public var examples: Int
        /// Cross-validated accuracy on the fit examples, and the share of them the cheap stage passed on.
        public var crossValidatedAccuracy: Double
        public var escalationRate: Double
        /// L2 penalty chosen per stage.
        public var regularization: [Double]
        public var createdAt: String

        enum CodingKeys: String, CodingKey {
            case examples
            case crossValidatedAccuracy = "cv_accuracy"
            case escalationRate = "escalation_rate"
            case regularization
            case createdAt = "created_at"
        }
    }

    public init(labels: [String], stages: [RouterStage], baseFingerprint: String, fit: FitSummary) {
        self.labels = labels
        self.stages = stages
        self.baseFingerprint = baseFingerprint
        self.fit = fit
    }

    /// The features a stage needs: pooled hidden states of the base model after `layers` layers, for each row of
    /// ids (the engine directly, or the worker's engine thread).
    public typealias FeatureSource = @Sendable (_ rows: [[Int32]], _ layers: Int) async throws -> [[Float]]

    /// Decides every text (as token ids, `[CLS]` … `[SEP]`): each stage runs, batched, on the texts earlier stages
    /// were unsure of.
    public func route(_ encoded: [[Int32]], features: FeatureSource) async throws -> [RoutingDecision] {
        var decisions = [RoutingDecision?](repeating: nil, count: encoded.count)
        var open = Array(encoded.indices)
        for (index, stage) in stages.enumerated() where !open.isEmpty {
            let pooled = try await features(open.map { stage.features.truncate(encoded[$0]) }, stage.features.layers)
            var unsure: [Int] = []
            for (row, vector) in zip(open, pooled) {
                let probabilities = stage.probabilities(vector)
                var best = 0
                for k in probabilities.indices where probabilities[k] > probabilities[best] { best = k }
                if probabilities[best] >= stage.threshold || index == stages.count - 1 {
                    decisions[row] = RoutingDecision(adapter: labels[best], confidence: probabilities[best], stage: index)
                } else {
                    unsure.append(row)
                }
            }
            open = unsure
        }
        return decisions.map { $0! }
    }

    /// Routes texts with `engine` on the calling thread (for tools; the worker batches through its engine thread).
    public func route(_ texts: [String], engine: InferenceEngine) async throws -> [RoutingDecision] {
        try await route(texts.map { engine.encode($0).ids }) { rows, layers in try engine.features(encoded: rows, layers: layers) }
    }
}
