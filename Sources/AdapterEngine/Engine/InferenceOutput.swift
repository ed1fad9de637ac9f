/// One sequence ready for the encoder: token ids and the adapter to run it with.
public struct EncodedInput: Sendable {
    /// Token ids, `[CLS]` first and `[SEP]` last.
    public let ids: [Int32]
    /// The adapter for this row, or nil for the bare base model.
    public let adapter: LoRAAdapter?
    /// Each id's token type (a text pair's second part is 1 in BERT's template); nil: all 0.
    public let typeIds: [Int32]?

    /// Pairs `ids` (of token types `typeIds`, all 0 when nil) with an optional adapter.
    public init(ids: [Int32], adapter: LoRAAdapter?, typeIds: [Int32]? = nil) {
        self.ids = ids
        self.adapter = adapter
        self.typeIds = typeIds
    }
}

/// What the engine computed for one row.
public enum InferenceOutput: Sendable, Equatable {
    /// Mean-pooled, L2-normalised sentence embedding (no adapter, or an adapter without a head).
    case embedding([Float])
    /// Classifier logits with the arg-max label.
    case classification(logits: [Float], labelIndex: Int, label: String)
    /// A token classifier's logits and arg-max label for every token, specials included (`task_type: TOKEN_CLS`).
    case tokenClassification(logits: [[Float]], labels: [String])

    /// The embedding, if this is one.
    public var embedding: [Float]? {
        if case .embedding(let values) = self { return values }
        return nil
    }

    /// The logits, if this is a classification.
    public var logits: [Float]? {
        if case .classification(let logits, _, _) = self { return logits }
        return nil
    }

    /// Every row of logits a label is read from: the classification's one, or each token's; nil for an embedding.
    public var logitRows: [[Float]]? {
        switch self {
        case .classification(let logits, _, _): return [logits]
        case .tokenClassification(let logits, _): return logits
        case .embedding: return nil
        }
    }

    /// The predicted label, if this is a classification.
    public var label: String? {
        if case .classification(_, _, let label) = self { return label }
        return nil
    }
}

/// The result for one text: the token ids it became and the output.
public struct InferenceResult: Sendable {
    /// The token ids the text became, `[CLS]` and `[SEP]` included.
    public let ids: [Int32]
    /// Their number.
    public var tokens: Int { ids.count }
    /// Whether the text was cut to the maximum sequence length.
    public let truncated: Bool
    /// Embedding or classification.
    public let output: InferenceOutput
    /// Which pass answered it (INT8's label check).
    public let labelCheck: LabelCheckOutcome
}
