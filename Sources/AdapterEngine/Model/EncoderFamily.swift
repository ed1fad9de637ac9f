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
    public var encoderName: String { self == .modernbert ? "model" : rawValue }

    /// The path of `slot` below an encoder layer, in this family's names (`attention.self.query`, `attention.q_lin`,
    /// `attn.Wqkv`).
    public func modulePath(_ slot: LinearSlot) -> String { path(of: slot) }

    /// The full module name of `slot` in layer `layer` of the task model, as PEFT names it
    /// (`bert.encoder.layer.0.attention.self.query`, `distilbert.transformer.layer.0.attention.q_lin`).
    public func moduleName(layer: Int, slot: LinearSlot) -> String {
        encoderName + "." + layerPath(layer) + "." + path(of: slot)
    }

    /// The family whose task model a PEFT tensor name (`base_model.model.roberta.encoder…`) belongs to; nil when the
    /// name shows none (a head tensor).
    public init?(peftTensorName name: String) {
        let path = name.hasPrefix("base_model.model.") ? String(name.dropFirst("base_model.model.".count)) : name
        for family in [EncoderFamily.bert, .roberta, .distilbert, .modernbert] where path.hasPrefix(family.encoderName + ".") {
            self = family
            return
        }
        return nil
    }

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
