import Foundation

/// The hyper-parameters of a BERT-family encoder, read from Hugging Face's `config.json`.
public struct BertConfig: Sendable, Equatable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var intermediateSize: Int
    public var maxPositionEmbeddings: Int
    public var typeVocabSize: Int
    public var layerNormEps: Float
    /// `model_type`: "bert", "roberta", "xlm-roberta", "distilbert" or "modernbert".
    public var modelType: String
    /// The first position id a sequence uses: RoBERTa counts positions after its padding index
    /// (`pad_token_id + 1`), BERT from 0.
    public var positionOffset: Int
    /// The family whose weight and module names the checkpoint uses.
    public var family: EncoderFamily { EncoderFamily(modelType: modelType) }
    /// The name the task models keep the encoder under (`bert.`, `roberta.`, `distilbert.`, `model.`): weights and
    /// PEFT's module names.
    public var encoderName: String { family.encoderName }
    /// ModernBERT's pre-norm layout, rotary embeddings and attention pattern; nil for the post-norm families.
    public var modernBERT: ModernBertLayout?
    /// How the sequence embedding is pooled: from the directory's sentence-transformers modules, not `config.json`
    /// (set by `BertModel`; the mean, normalised, by default).
    public var pooling = SentencePooling.meanNormalized

    /// The `model_type`s this engine runs.
    public static let supportedModelTypes = ["bert", "roberta", "xlm-roberta", "distilbert", "modernbert"]

    /// Width of one attention head.
    public var headSize: Int { hiddenSize / numAttentionHeads }

    /// Reads and checks `config.json` from `path`.
    public init(path: String) throws(ModelError) {
        let raw: RawConfig
        let fields: [String: Any]
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            raw = try JSONDecoder().decode(RawConfig.self, from: data)
            fields = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
        } catch {
            throw .invalidConfig(file: path, reason: "cannot read config.json: \(error)")
        }
        if let type = raw.model_type, !Self.supportedModelTypes.contains(type) {
            throw .unsupported(file: path, field: "model_type", value: type)
        }
        modelType = raw.model_type ?? "bert"
        let distil = modelType == "distilbert"
        let modern = modelType == "modernbert"
        // DistilBERT names its fields apart: dim, n_layers, n_heads, hidden_dim, activation.
        if !modern, let activation = distil ? raw.activation : raw.hidden_act, activation != "gelu" {
            throw .unsupported(file: path, field: distil ? "activation" : "hidden_act", value: activation)
        }
        if let positions = raw.position_embedding_type, positions != "absolute" {
            throw .unsupported(file: path, field: "position_embedding_type", value: positions)
        }
        if raw.sinusoidal_pos_embds == true { throw .unsupported(file: path, field: "sinusoidal_pos_embds", value: "true") }
        func required(_ value: Int?, _ field: String) throws(ModelError) -> Int {
            guard let value else { throw .invalidConfig(file: path, reason: "config.json has no \(field)") }
            return value
        }
        vocabSize = try required(raw.vocab_size, "vocab_size")
        hiddenSize = try required(distil ? raw.dim : raw.hidden_size, distil ? "dim" : "hidden_size")
        numHiddenLayers = try required(distil ? raw.n_layers : raw.num_hidden_layers, distil ? "n_layers" : "num_hidden_layers")
        numAttentionHeads = try required(distil ? raw.n_heads : raw.num_attention_heads, distil ? "n_heads" : "num_attention_heads")
        intermediateSize = try required(distil ? raw.hidden_dim : raw.intermediate_size, distil ? "hidden_dim" : "intermediate_size")
        maxPositionEmbeddings = try required(raw.max_position_embeddings, "max_position_embeddings")
        // DistilBERT and ModernBERT have no token types: one all-zero row stands in for them.
        typeVocabSize = distil || modern ? 1 : raw.type_vocab_size ?? 2
        layerNormEps = Float((modern ? raw.norm_eps : raw.layer_norm_eps) ?? (modern ? 1e-5 : 1e-12))
        positionOffset = EncoderFamily(modelType: modelType) == .roberta ? (raw.pad_token_id ?? 1) + 1 : 0
        guard hiddenSize > 0, numAttentionHeads > 0, hiddenSize % numAttentionHeads == 0 else {
            throw .invalidConfig(file: path, reason: "hidden_size \(hiddenSize) is not a multiple of num_attention_heads \(numAttentionHeads)")
        }
        if modern {
            modernBERT = try ModernBertLayout(raw: fields, layers: numHiddenLayers, path: path)
            guard headSize % 2 == 0 else {
                throw .invalidConfig(file: path, reason: "rotary embeddings need an even head size, not \(headSize)")
            }
        }
        guard numHiddenLayers > 0, intermediateSize > 0, vocabSize > 0, maxPositionEmbeddings > positionOffset, positionOffset >= 0 else {
            throw .invalidConfig(file: path, reason: "sizes must be positive")
        }
    }

    private struct RawConfig: Decodable {
        let vocab_size: Int?
        let hidden_size: Int?
        let num_hidden_layers: Int?
        let num_attention_heads: Int?
        let intermediate_size: Int?
        let max_position_embeddings: Int?
        let dim: Int?
        let n_layers: Int?
        let n_heads: Int?
        let hidden_dim: Int?
        let activation: String?
        let sinusoidal_pos_embds: Bool?
        let type_vocab_size: Int?
        let layer_norm_eps: Double?
        let norm_eps: Double?
        let hidden_act: String?
        let position_embedding_type: String?
        let model_type: String?
        let pad_token_id: Int?
    }
}
