/// ModernBERT's weights in the layout the forward pass runs: its norms where the post-norm families have theirs.
extension BertWeights {
    /// Reads a ModernBERT checkpoint (`ModernBertModel`, or a task model's `model.` prefix).
    ///
    /// Each block's norms sit after a residual sum, as BERT's do, but normalise the next product's input instead of
    /// the stream: `attentionNorm` is the block's `mlp_norm`, `outputNorm` the next block's `attn_norm` (the last
    /// block's: `final_norm`). The first block's `attn_norm` is the identity (transformers leaves it out), so the
    /// embedding norm's output feeds it. Missing biases (`attention_bias`, `mlp_bias`, `norm_bias` false) are zeros.
    static func modernBERT(file: SafeTensorsFile, config: BertConfig, layout: ModernBertLayout) throws(ModelError) -> BertWeights {
        let prefix = file.contains("model.embeddings.tok_embeddings.weight") ? "model." : ""
        func tensor(_ name: String, _ shape: [Int]) throws(ModelError) -> Tensor {
            try Self.tensor(prefix + name, shape, in: file)
        }
        let hidden = config.hiddenSize
        let zeros = { (count: Int) in Tensor(shape: [count], storage: FloatStorage([Float](repeating: 0, count: count))) }
        func norm(_ path: String) throws(ModelError) -> LayerNormWeights {
            LayerNormWeights(gamma: try tensor(path + ".weight", [hidden]), beta: layout.normBias ? try tensor(path + ".bias", [hidden]) : zeros(hidden))
        }
        func linear(_ path: String, out: Int, in inputs: Int, bias: Bool) throws(ModelError) -> LinearWeights {
            LinearWeights(weight: try tensor(path + ".weight", [out, inputs]), bias: bias ? try tensor(path + ".bias", [out]) : nil)
        }
        let empty = Tensor(shape: [1, hidden], storage: FloatStorage([Float](repeating: 0, count: hidden)))
        var layers: [Layer] = []
        for index in 0..<config.numHiddenLayers {
            let base = "layers.\(index)."
            let fused = try linear(base + "attn.Wqkv", out: 3 * hidden, in: hidden, bias: layout.attentionBias)
            let thirds = (0..<3).map { third in
                LinearWeights(
                    weight: fused.weight.rows((third * hidden)..<((third + 1) * hidden)),
                    bias: fused.bias?.rows((third * hidden)..<((third + 1) * hidden)))
            }
            let next = index + 1 < config.numHiddenLayers ? "layers.\(index + 1).attn_norm" : "final_norm"
            layers.append(Layer(
                linears: thirds + [
                    try linear(base + "attn.Wo", out: hidden, in: hidden, bias: layout.attentionBias),
                    try linear(base + "mlp.Wi", out: 2 * config.intermediateSize, in: hidden, bias: layout.mlpBias),
                    try linear(base + "mlp.Wo", out: hidden, in: config.intermediateSize, bias: layout.mlpBias),
                ],
                attentionNorm: try norm(base + "mlp_norm"),
                outputNorm: try norm(next),
                fusedQueryKeyValue: fused))
        }
        return BertWeights(
            embeddings: [try tensor("embeddings.tok_embeddings.weight", [config.vocabSize, hidden]), empty, empty],
            embeddingNorm: try norm("embeddings.norm"), layers: layers, pooler: nil)
    }
}
