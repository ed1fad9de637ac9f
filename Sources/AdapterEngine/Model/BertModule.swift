/// The Linear layers of one encoder layer, in the order the forward pass uses them.
public enum LinearSlot: Int, CaseIterable, Sendable {
    case query, key, value, attentionOutput, intermediate, output

    /// The slot a training option or request names: its path below `encoder.layer.N.`, or `query`, `key`,
    /// `value` for the attention projections, or DistilBERT's name (`q_lin`, `k_lin`, `v_lin`, `out_lin`, `lin1`,
    /// `lin2`) or ModernBERT's (`Wqkv`, `attn.Wo`, `Wi`, `mlp.Wo`).
    public init?(moduleName name: String) {
        if let slot = Self.allCases.first(where: { $0.path == name || $0.path == "attention.self." + name }) {
            self = slot
            return
        }
        // DistilBERT's and ModernBERT's names for the same layers (ModernBERT's Wqkv is the query slot).
        for family in [EncoderFamily.distilbert, .modernbert] {
            if let slot = Self.allCases.first(where: {
                let path = family.path(of: $0)
                return path == name || path.hasSuffix("." + name)
            }) {
                self = slot
                return
            }
        }
        return nil
    }

    /// The module path below `encoder.layer.N.`.
    public var path: String {
        switch self {
        case .query: return "attention.self.query"
        case .key: return "attention.self.key"
        case .value: return "attention.self.value"
        case .attentionOutput: return "attention.output.dense"
        case .intermediate: return "intermediate.dense"
        case .output: return "output.dense"
        }
    }
}

/// The embedding tables of a BERT model.
public enum EmbeddingTable: Int, CaseIterable, Sendable {
    case word, position, tokenType

    /// The module path below `embeddings.`.
    public var path: String {
        switch self {
        case .word: return "word_embeddings"
        case .position: return "position_embeddings"
        case .tokenType: return "token_type_embeddings"
        }
    }
}

/// A module of `BertForSequenceClassification` that an adapter can change.
public enum BertModule: Hashable, Sendable {
    case embedding(EmbeddingTable)
    case linear(layer: Int, slot: LinearSlot)
    case pooler
    case classifier
}
