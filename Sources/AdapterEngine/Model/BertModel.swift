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

    /// The input and output widths of a module, or nil when the model has no such module.
    public func shape(of module: BertModule) -> (inFeatures: Int, outFeatures: Int)? {
        switch module {
        case .embedding(let table):
            let tensor = weights.embeddings[table.rawValue]
            return (tensor.shape[0], tensor.shape[1])
        case .linear(let layer, let slot):
            guard layer < weights.layers.count else { return nil }
            let linear = weights.layers[layer][slot]
            return (linear.inFeatures, linear.outFeatures)
        case .pooler:
            return weights.pooler.map { ($0.inFeatures, $0.outFeatures) }
        case .classifier:
            return nil
        }
    }
}
