/// The router designs `adapterctl router fit` can make, by where they sit on the accuracy/cost curve
/// (Benchmarks/README.md, "Input routing", has the measurements behind the default).
public enum RouterKind: String, Sendable, CaseIterable {
    /// Word-piece embeddings (no transformer layer, ≈ 0 % of a pass) answer when sure; the rest escalate to
    /// the full sentence embedding. The default.
    case cascade
    /// The full sentence embedding (a whole base pass) for every request: the most accurate, the dearest.
    case embedding
    /// Word-piece embeddings only: nearly free, least accurate.
    case wordpiece

    /// The stages' features, cheapest first.
    public func features(layers: Int) -> [RouterStage.Features] {
        let cheap = RouterStage.Features(layers: 0, maxTokens: 128, l2Normalize: false)
        let full = RouterStage.Features(layers: layers, maxTokens: 128, l2Normalize: true)
        switch self {
        case .cascade: return [cheap, full]
        case .embedding: return [full]
        case .wordpiece: return [cheap]
        }
    }
}
