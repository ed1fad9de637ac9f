/// An encoder family: how its checkpoints and PEFT's module names call the same parts of a BERT-style encoder.
public enum EncoderFamily: String, Sendable {
    /// BERT (and bge, gte, e5 checkpoints): `bert.encoder.layer.N.attention.self.query`…
    case bert
    /// RoBERTa and XLM-RoBERTa: BERT's names under `roberta.`, and a head of their own.
    case roberta
    /// DistilBERT: `distilbert.transformer.layer.N.attention.q_lin`…, no token types, no pooler.
    case distilbert
    /// ModernBERT: `model.layers.N.attn.Wqkv` (Q, K and V in one Linear), `attn.Wo`, `mlp.Wi` (input and gate),
    /// `mlp.Wo`; pre-norm blocks, no position or token-type tables.
    case modernbert

    /// The family of `model_type` (any RoBERTa-like type other than the two named ones is refused before this).
    init(modelType: String) {
        switch modelType {
        case "bert": self = .bert
        case "distilbert": self = .distilbert
        case "modernbert": self = .modernbert
        default: self = .roberta
        }
    }

    /// The name the task models keep the encoder under.
    var encoderName: String { self == .modernbert ? "model" : rawValue }

    /// Encoder layer `index`'s path below the encoder's name.
    func layerPath(_ index: Int) -> String {
        switch self {
        case .distilbert: return "transformer.layer.\(index)"
        case .modernbert: return "layers.\(index)"
        default: return "encoder.layer.\(index)"
        }
    }

    /// The path of `slot` below a layer.
    func path(of slot: LinearSlot) -> String {
        if self == .modernbert {
            // Q, K and V are one Linear: the query slot stands for it (see `BertWeights.Layer.fusedQueryKeyValue`).
            switch slot {
            case .query, .key, .value: return "attn.Wqkv"
            case .attentionOutput: return "attn.Wo"
            case .intermediate: return "mlp.Wi"
            case .output: return "mlp.Wo"
            }
        }
        guard self == .distilbert else { return slot.path }
        switch slot {
        case .query: return "attention.q_lin"
        case .key: return "attention.k_lin"
        case .value: return "attention.v_lin"
        case .attentionOutput: return "attention.out_lin"
        case .intermediate: return "ffn.lin1"
        case .output: return "ffn.lin2"
        }
    }

    /// The LayerNorms after self-attention and after the feed-forward block, below a layer.
    var layerNorms: (attention: String, output: String) {
        self == .distilbert ? ("sa_layer_norm", "output_layer_norm") : ("attention.output.LayerNorm", "output.LayerNorm")
    }
}
