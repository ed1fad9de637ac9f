/// The Linear layers of one encoder layer, in the order the forward pass uses them.
public enum LinearSlot: Int, CaseIterable, Sendable {
    case query, key, value, attentionOutput, intermediate, output

    /// The slot a training option or request names: its path below `encoder.layer.N.`, or `query`, `key`,
    /// `value` for the attention projections.
    public init?(moduleName name: String) {
        guard let slot = Self.allCases.first(where: { $0.path == name || $0.path == "attention.self." + name }) else { return nil }
        self = slot
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
