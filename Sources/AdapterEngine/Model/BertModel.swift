/// A frozen BERT-family base model: configuration, memory-mapped weights and tokenizer.
public struct BertModel: Sendable {
    /// Directory the model was loaded from.
    public let directory: String
    /// Hyper-parameters from `config.json`.
    public let config: BertConfig
    /// The weights (zero-copy views into `model.safetensors`).
    public let weights: BertWeights
    /// The tokenizer its `tokenizer.json` declares.
    public let tokenizer: Tokenizer

    /// Loads `config.json`, `model.safetensors`, the tokenizer and the sentence-transformers pooling from a Hugging
    /// Face model directory.
    public init(directory: String, maxSequenceLength: Int = 128) throws(ModelError) {
        var config = try BertConfig(path: directory + "/config.json")
        config.pooling = try SentencePooling(modelDirectory: directory)
        let file: SafeTensorsFile
        do {
            file = try SafeTensorsFile(path: directory + "/model.safetensors")
        } catch {
            throw .weights(error)
        }
        let tokenizer: Tokenizer
        do {
            // Positions past the offset (RoBERTa's padding index) are all a sequence can use.
            tokenizer = try Tokenizer(modelDirectory: directory, maxLength: min(maxSequenceLength, config.maxPositionEmbeddings - config.positionOffset))
        } catch {
            throw .tokenizer(error)
        }
        self.init(directory: directory, config: config, weights: try BertWeights(file: file, config: config), tokenizer: tokenizer)
    }

    /// Assembles a model from parts (used by merged mode, which swaps in private weight copies).
    public init(directory: String, config: BertConfig, weights: BertWeights, tokenizer: Tokenizer) {
        self.directory = directory
        self.config = config
        self.weights = weights
        self.tokenizer = tokenizer
    }

    /// The weights an adapter's term for `module` adds to: the layer's Linear, or ModernBERT's whole `attn.Wqkv`
    /// for its query slot (nil when the model has no such module).
    public func linear(of module: BertModule) -> LinearWeights? {
        switch module {
        case .linear(let layer, let slot):
            guard layer < weights.layers.count else { return nil }
            if slot == .query, let fused = weights.layers[layer].fusedQueryKeyValue { return fused }
            return weights.layers[layer][slot]
        case .pooler:
            return weights.pooler
        case .embedding, .classifier:
            return nil
        }
    }

    /// The input and output widths of a module, or nil when the model has no such module.
    public func shape(of module: BertModule) -> (inFeatures: Int, outFeatures: Int)? {
        switch module {
        case .embedding(let table):
            let tensor = weights.embeddings[table.rawValue]
            return (tensor.shape[0], tensor.shape[1])
        case .linear:
            return linear(of: module).map { ($0.inFeatures, $0.outFeatures) }
        case .pooler:
            return weights.pooler.map { ($0.inFeatures, $0.outFeatures) }
        case .classifier:
            return nil
        }
    }
}
