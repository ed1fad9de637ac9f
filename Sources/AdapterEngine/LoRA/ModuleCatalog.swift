/// Every named module of `BertForSequenceClassification`, as PyTorch's `named_modules()` lists them, with the
/// module type PEFT sees. PEFT matches `target_modules` against these names, so the catalog must list
/// containers, norms and dropouts too: a target that selects one of them is an error, not a silent no-op.
struct ModuleCatalog: Sendable {
    struct Entry: Sendable {
        /// Full module name, e.g. `bert.encoder.layer.0.attention.self.query`.
        let name: String
        /// PyTorch class name, for error messages.
        let type: String
        /// The adaptable module this entry is, if any.
        let module: BertModule?

        var isLinear: Bool { type == "Linear" }
    }

    let entries: [Entry]

    /// The modules of the task model over an encoder of `layers` layers of `family`: BERT's head is a pooler and one
    /// Linear, RoBERTa's a `classifier` holding `dense` and `out_proj`, DistilBERT's `pre_classifier` and
    /// `classifier`.
    init(layers: Int, hasPooler: Bool, family: EncoderFamily = .bert) {
        switch family {
        case .distilbert: entries = Self.distilBERT(layers: layers)
        case .modernbert: entries = Self.modernBERT(layers: layers)
        case .bert, .roberta: entries = Self.bert(layers: layers, hasPooler: hasPooler, encoder: family.rawValue)
        }
    }

    /// `ModernBertForSequenceClassification`'s modules (the token classifier's are the same). `attn.Wqkv` is one
    /// module, listed as the query slot (its adapters' terms span Q, K and V); `head.dense` belongs to the head, which
    /// PEFT saves whole.
    private static func modernBERT(layers: Int) -> [Entry] {
        var entries: [Entry] = [
            Entry(name: "model", type: "ModernBertModel", module: nil),
            Entry(name: "model.embeddings", type: "ModernBertEmbeddings", module: nil),
            Entry(name: "model.embeddings.tok_embeddings", type: "Embedding", module: .embedding(.word)),
            Entry(name: "model.embeddings.norm", type: "LayerNorm", module: nil),
            Entry(name: "model.embeddings.drop", type: "Dropout", module: nil),
            Entry(name: "model.layers", type: "ModuleList", module: nil),
        ]
        for index in 0..<layers {
            let base = "model.layers.\(index)"
            entries += [
                Entry(name: base, type: "ModernBertEncoderLayer", module: nil),
                Entry(name: base + ".attn_norm", type: index == 0 ? "Identity" : "LayerNorm", module: nil),
                Entry(name: base + ".attn", type: "ModernBertAttention", module: nil),
                Entry(name: base + ".attn.Wqkv", type: "Linear", module: .linear(layer: index, slot: .query)),
                Entry(name: base + ".attn.Wo", type: "Linear", module: .linear(layer: index, slot: .attentionOutput)),
                Entry(name: base + ".attn.out_drop", type: "Identity", module: nil),
                Entry(name: base + ".mlp_norm", type: "LayerNorm", module: nil),
                Entry(name: base + ".mlp", type: "ModernBertMLP", module: nil),
                Entry(name: base + ".mlp.Wi", type: "Linear", module: .linear(layer: index, slot: .intermediate)),
                Entry(name: base + ".mlp.act", type: "GELUActivation", module: nil),
                Entry(name: base + ".mlp.drop", type: "Dropout", module: nil),
                Entry(name: base + ".mlp.Wo", type: "Linear", module: .linear(layer: index, slot: .output)),
            ]
        }
        return entries + [
            Entry(name: "model.final_norm", type: "LayerNorm", module: nil),
            Entry(name: "model.rotary_emb", type: "ModernBertRotaryEmbedding", module: nil),
            Entry(name: "head", type: "ModernBertPredictionHead", module: nil),
            Entry(name: "head.dense", type: "Linear", module: .classifier),
            Entry(name: "head.act", type: "GELUActivation", module: nil),
            Entry(name: "head.norm", type: "LayerNorm", module: nil),
            Entry(name: "drop", type: "Dropout", module: nil),
            Entry(name: "classifier", type: "Linear", module: .classifier),
        ]
    }

    private static func bert(layers: Int, hasPooler: Bool, encoder: String) -> [Entry] {
        var entries: [Entry] = [
            Entry(name: encoder, type: "BertModel", module: nil),
            Entry(name: encoder + ".embeddings", type: "BertEmbeddings", module: nil),
        ]
        for table in EmbeddingTable.allCases {
            entries.append(Entry(name: encoder + ".embeddings." + table.path, type: "Embedding", module: .embedding(table)))
        }
        entries += [
            Entry(name: encoder + ".embeddings.LayerNorm", type: "LayerNorm", module: nil),
            Entry(name: encoder + ".embeddings.dropout", type: "Dropout", module: nil),
            Entry(name: encoder + ".encoder", type: "BertEncoder", module: nil),
            Entry(name: encoder + ".encoder.layer", type: "ModuleList", module: nil),
        ]
        for index in 0..<layers {
            let base = encoder + ".encoder.layer.\(index)"
            func linear(_ slot: LinearSlot) -> Entry {
                Entry(name: base + "." + slot.path, type: "Linear", module: .linear(layer: index, slot: slot))
            }
            entries += [
                Entry(name: base, type: "BertLayer", module: nil),
                Entry(name: base + ".attention", type: "BertAttention", module: nil),
                Entry(name: base + ".attention.self", type: "BertSelfAttention", module: nil),
                linear(.query), linear(.key), linear(.value),
                Entry(name: base + ".attention.self.dropout", type: "Dropout", module: nil),
                Entry(name: base + ".attention.output", type: "BertSelfOutput", module: nil),
                linear(.attentionOutput),
                Entry(name: base + ".attention.output.LayerNorm", type: "LayerNorm", module: nil),
                Entry(name: base + ".attention.output.dropout", type: "Dropout", module: nil),
                Entry(name: base + ".intermediate", type: "BertIntermediate", module: nil),
                linear(.intermediate),
                Entry(name: base + ".intermediate.intermediate_act_fn", type: "GELUActivation", module: nil),
                Entry(name: base + ".output", type: "BertOutput", module: nil),
                linear(.output),
                Entry(name: base + ".output.LayerNorm", type: "LayerNorm", module: nil),
                Entry(name: base + ".output.dropout", type: "Dropout", module: nil),
            ]
        }
        if hasPooler {
            entries += [
                Entry(name: encoder + ".pooler", type: "BertPooler", module: nil),
                Entry(name: encoder + ".pooler.dense", type: "Linear", module: .pooler),
                Entry(name: encoder + ".pooler.activation", type: "Tanh", module: nil),
            ]
        }
        entries += [
            Entry(name: "dropout", type: "Dropout", module: nil),
        ]
        if encoder == "roberta" {
            entries += [
                Entry(name: "classifier", type: "RobertaClassificationHead", module: nil),
                Entry(name: "classifier.dense", type: "Linear", module: .classifier),
                Entry(name: "classifier.dropout", type: "Dropout", module: nil),
                Entry(name: "classifier.out_proj", type: "Linear", module: .classifier),
            ]
        } else {
            entries.append(Entry(name: "classifier", type: "Linear", module: .classifier))
        }
        return entries
    }

    /// `DistilBertForSequenceClassification`'s modules.
    private static func distilBERT(layers: Int) -> [Entry] {
        var entries: [Entry] = [
            Entry(name: "distilbert", type: "DistilBertModel", module: nil),
            Entry(name: "distilbert.embeddings", type: "Embeddings", module: nil),
            Entry(name: "distilbert.embeddings.word_embeddings", type: "Embedding", module: .embedding(.word)),
            Entry(name: "distilbert.embeddings.position_embeddings", type: "Embedding", module: .embedding(.position)),
            Entry(name: "distilbert.embeddings.LayerNorm", type: "LayerNorm", module: nil),
            Entry(name: "distilbert.embeddings.dropout", type: "Dropout", module: nil),
            Entry(name: "distilbert.transformer", type: "Transformer", module: nil),
            Entry(name: "distilbert.transformer.layer", type: "ModuleList", module: nil),
        ]
        for index in 0..<layers {
            let base = "distilbert.transformer.layer.\(index)"
            func linear(_ slot: LinearSlot) -> Entry {
                Entry(name: base + "." + EncoderFamily.distilbert.path(of: slot), type: "Linear", module: .linear(layer: index, slot: slot))
            }
            entries += [
                Entry(name: base, type: "TransformerBlock", module: nil),
                Entry(name: base + ".attention", type: "DistilBertSdpaAttention", module: nil),
                Entry(name: base + ".attention.dropout", type: "Dropout", module: nil),
                linear(.query), linear(.key), linear(.value), linear(.attentionOutput),
                Entry(name: base + ".sa_layer_norm", type: "LayerNorm", module: nil),
                Entry(name: base + ".ffn", type: "FFN", module: nil),
                Entry(name: base + ".ffn.dropout", type: "Dropout", module: nil),
                linear(.intermediate), linear(.output),
                Entry(name: base + ".ffn.activation", type: "GELUActivation", module: nil),
                Entry(name: base + ".output_layer_norm", type: "LayerNorm", module: nil),
            ]
        }
        return entries + [
            Entry(name: "pre_classifier", type: "Linear", module: .classifier),
            Entry(name: "classifier", type: "Linear", module: .classifier),
            Entry(name: "dropout", type: "Dropout", module: nil),
        ]
    }
}

/// Decides which modules a `LoRAConfig` adapts, with PEFT's rules (`check_target_module_exists`,
/// `get_pattern_key`).
struct TargetMatcher {
    let config: LoRAConfig
    private let targetRegex: Regex<AnyRegexOutput>?
    private let excludeRegex: Regex<AnyRegexOutput>?
    private let layerRegexes: [Regex<AnyRegexOutput>]
    private let rankRegexes: [(Regex<AnyRegexOutput>, Int)]
    private let alphaRegexes: [(Regex<AnyRegexOutput>, Double)]

    init(config: LoRAConfig) throws {
        self.config = config
        if case .regex(let pattern) = config.targets { targetRegex = try Regex(pattern) } else { targetRegex = nil }
        if case .regex(let pattern) = config.excludeModules { excludeRegex = try Regex(pattern) } else { excludeRegex = nil }
        if config.layersToTransform != nil {
            if let patterns = config.layersPattern, !patterns.isEmpty {
                layerRegexes = try patterns.map { try Regex(#".*\."# + $0 + #"\.(\d+)\."#) }
            } else {
                layerRegexes = [try Regex(#".*\.[^.]*\.(\d+)\."#)]
            }
        } else {
            layerRegexes = []
        }
        // re.match(rf"(.*\.)?({key})$", name): anchored at the start, and at the end by `$`.
        rankRegexes = try config.rankPattern.map { (try Regex("(.*\\.)?(\($0.pattern))"), $0.rank) }
        alphaRegexes = try config.alphaPattern.map { (try Regex("(.*\\.)?(\($0.pattern))"), $0.alpha) }
    }

    /// Whether `entry` is adapted.
    func isTargeted(_ entry: ModuleCatalog.Entry) -> Bool {
        let name = entry.name
        switch config.excludeModules {
        case .names(let names)?:
            if names.contains(where: { name == $0 || name.hasSuffix("." + $0) }) { return false }
        case .regex?:
            if (try? excludeRegex?.wholeMatch(in: name)) != nil { return false }
        case .allLinear?, nil:
            break
        }
        switch config.targets {
        case .regex:
            return (try? targetRegex?.wholeMatch(in: name)) != nil
        case .allLinear:
            return entry.isLinear && entry.module != .classifier
        case .names(let names):
            if names.contains(name) { return true }
            guard names.contains(where: { name.hasSuffix("." + $0) }) else { return false }
            guard let wanted = config.layersToTransform else { return true }
            for regex in layerRegexes {
                if let match = try? regex.prefixMatch(in: name), match.output.count > 1,
                   let captured = match.output[1].substring, let index = Int(captured) {
                    return wanted.contains(index)
                }
            }
            return false
        }
    }

    /// The rank for a module: the first matching `rank_pattern` key, else `r`.
    func rank(for name: String) -> Int {
        for (regex, rank) in rankRegexes where (try? regex.wholeMatch(in: name)) != nil { return rank }
        return config.rank
    }

    /// The alpha for a module: the first matching `alpha_pattern` key, else `lora_alpha`.
    func alpha(for name: String) -> Double {
        for (regex, alpha) in alphaRegexes where (try? regex.wholeMatch(in: name)) != nil { return alpha }
        return config.alpha
    }
}
