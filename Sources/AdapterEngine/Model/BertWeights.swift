/// The frozen weights of a BERT encoder (with its pooler), memory-mapped from `model.safetensors`.
public struct BertWeights: Sendable {
    /// The layers of one encoder block.
    public struct Layer: Sendable {
        /// Dense layers indexed by `LinearSlot.rawValue`.
        public var linears: [LinearWeights]
        /// LayerNorm after self-attention.
        public var attentionNorm: LayerNormWeights
        /// LayerNorm after the feed-forward block.
        public var outputNorm: LayerNormWeights
        /// ModernBERT's `attn.Wqkv` whole (`[3·hidden, hidden]`): the query, key and value slots view its thirds,
        /// and an adapter's module for it (the query slot) is this wide.
        public var fusedQueryKeyValue: LinearWeights?

        /// The dense layer in `slot`.
        public subscript(slot: LinearSlot) -> LinearWeights {
            get { linears[slot.rawValue] }
            set { linears[slot.rawValue] = newValue }
        }
    }

    /// Embedding tables indexed by `EmbeddingTable.rawValue`, each `[rows, hidden]`.
    public var embeddings: [Tensor]
    /// LayerNorm after summing the embeddings.
    public var embeddingNorm: LayerNormWeights
    /// Encoder layers, first to last.
    public var layers: [Layer]
    /// The `[CLS]` pooler (`tanh(W·h + b)`), absent in models saved without it.
    public var pooler: LinearWeights?

    /// Reads and shape-checks every tensor `config` implies from `file`.
    public init(file: SafeTensorsFile, config: BertConfig) throws(ModelError) {
        if let layout = config.modernBERT {
            self = try Self.modernBERT(file: file, config: config, layout: layout)
            return
        }
        // Hugging Face saves BertModel (RobertaModel) without a prefix and the task models under "bert." ("roberta.").
        let prefix = file.contains(config.encoderName + ".embeddings.word_embeddings.weight") ? config.encoderName + "." : ""
        func tensor(_ name: String, _ shape: [Int]) throws(ModelError) -> Tensor {
            try Self.tensor(prefix + name, shape, in: file)
        }
        let hidden = config.hiddenSize
        func norm(_ path: String) throws(ModelError) -> LayerNormWeights {
            LayerNormWeights(gamma: try tensor(path + ".weight", [hidden]), beta: try tensor(path + ".bias", [hidden]))
        }
        func linear(_ path: String, out: Int, in inputs: Int) throws(ModelError) -> LinearWeights {
            LinearWeights(weight: try tensor(path + ".weight", [out, inputs]), bias: try tensor(path + ".bias", [out]))
        }
        let family = config.family
        embeddings = [
            try tensor("embeddings.word_embeddings.weight", [config.vocabSize, hidden]),
            try tensor("embeddings.position_embeddings.weight", [config.maxPositionEmbeddings, hidden]),
            family == .distilbert
                ? Tensor(shape: [1, hidden], storage: FloatStorage([Float](repeating: 0, count: hidden)))
                : try tensor("embeddings.token_type_embeddings.weight", [config.typeVocabSize, hidden]),
        ]
        embeddingNorm = try norm("embeddings.LayerNorm")
        layers = []
        for index in 0..<config.numHiddenLayers {
            let base = family.layerPath(index) + "."
            var linears: [LinearWeights] = []
            for slot in LinearSlot.allCases {
                let (out, inputs): (Int, Int)
                switch slot {
                case .intermediate: (out, inputs) = (config.intermediateSize, hidden)
                case .output: (out, inputs) = (hidden, config.intermediateSize)
                default: (out, inputs) = (hidden, hidden)
                }
                linears.append(try linear(base + family.path(of: slot), out: out, in: inputs))
            }
            layers.append(Layer(
                linears: linears,
                attentionNorm: try norm(base + family.layerNorms.attention),
                outputNorm: try norm(base + family.layerNorms.output),
                fusedQueryKeyValue: nil))
        }
        pooler = file.contains(prefix + "pooler.dense.weight") ? try linear("pooler.dense", out: hidden, in: hidden) : nil
    }

    /// The tensor `name` of `file`, which must have `shape`.
    static func tensor(_ name: String, _ shape: [Int], in file: SafeTensorsFile) throws(ModelError) -> Tensor {
        let value: Tensor
        do {
            value = try file.tensor(name)
        } catch {
            throw .weights(error)
        }
        guard value.shape == shape else { throw .weightShape(file: file.path, tensor: name, shape: value.shape, expected: shape) }
        return value
    }

    /// Assembles weights from their parts.
    init(embeddings: [Tensor], embeddingNorm: LayerNormWeights, layers: [Layer], pooler: LinearWeights?) {
        self.embeddings = embeddings
        self.embeddingNorm = embeddingNorm
        self.layers = layers
        self.pooler = pooler
    }
}
