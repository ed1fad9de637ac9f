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
    /// `model_type`: "bert", "roberta" or "xlm-roberta".
    public var modelType: String
    /// The first position id a sequence uses: RoBERTa counts positions after its padding index
    /// (`pad_token_id + 1`), BERT from 0.
    public var positionOffset: Int
    /// The name the task models keep the encoder under (`bert.`, `roberta.`): weights and PEFT's module names.
    public var encoderName: String { modelType == "bert" ? "bert" : "roberta" }
    /// How the sequence embedding is pooled: from the directory's sentence-transformers modules, not `config.json`
    /// (set by `BertModel`; the mean, normalised, by default).
    public var pooling = SentencePooling.meanNormalized

    /// The `model_type`s this engine runs.
    public static let supportedModelTypes = ["bert", "roberta", "xlm-roberta"]

    /// Width of one attention head.
    public var headSize: Int { hiddenSize / numAttentionHeads }

    /// Reads and checks `config.json` from `path`.
    public init(path: String) throws(ModelError) {
        let raw: RawConfig
        do {
            raw = try JSONDecoder().decode(RawConfig.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw .invalidConfig(file: path, reason: "cannot read config.json: \(error)")
        }
        if let type = raw.model_type, !Self.supportedModelTypes.contains(type) {
            throw .unsupported(file: path, field: "model_type", value: type)
        }
        if let activation = raw.hidden_act, activation != "gelu" {
            throw .unsupported(file: path, field: "hidden_act", value: activation)
        }
        if let positions = raw.position_embedding_type, positions != "absolute" {
            throw .unsupported(file: path, field: "position_embedding_type", value: positions)
        }
        vocabSize = raw.vocab_size
        hiddenSize = raw.hidden_size
        numHiddenLayers = raw.num_hidden_layers
        numAttentionHeads = raw.num_attention_heads
        intermediateSize = raw.intermediate_size
        maxPositionEmbeddings = raw.max_position_embeddings
        typeVocabSize = raw.type_vocab_size ?? 2
        layerNormEps = Float(raw.layer_norm_eps ?? 1e-12)
        modelType = raw.model_type ?? "bert"
        positionOffset = modelType == "bert" ? 0 : (raw.pad_token_id ?? 1) + 1
        guard hiddenSize > 0, numAttentionHeads > 0, hiddenSize % numAttentionHeads == 0 else {
            throw .invalidConfig(file: path, reason: "hidden_size \(hiddenSize) is not a multiple of num_attention_heads \(numAttentionHeads)")
        }
        guard numHiddenLayers > 0, intermediateSize > 0, vocabSize > 0, maxPositionEmbeddings > positionOffset, positionOffset >= 0 else {
            throw .invalidConfig(file: path, reason: "sizes must be positive")
        }
    }

    private struct RawConfig: Decodable {
        let vocab_size: Int
        let hidden_size: Int
        let num_hidden_layers: Int
        let num_attention_heads: Int
        let intermediate_size: Int
        let max_position_embeddings: Int
        let type_vocab_size: Int?
        let layer_norm_eps: Double?
        let hidden_act: String?
        let position_embedding_type: String?
        let model_type: String?
        let pad_token_id: Int?
    }
}
