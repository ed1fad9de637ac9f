import AdapterEngine
import Foundation

/// The trainable parts of a LoRA adapter for sequence classification: A and B of each targeted linear module and
/// the classification head (PEFT's `modules_to_save`: BERT's classifier over its frozen pooler, RoBERTa's
/// `classifier.dense` and `classifier.out_proj`, DistilBERT's `pre_classifier` and `classifier`), named and shaped
/// as PEFT saves them for the model's family. The base model stays frozen.
public struct TrainableAdapter: Sendable {
    /// One trainable tensor.
    public struct Parameter: Sendable {
        /// The name PEFT's `adapter_model.safetensors` uses.
        public let name: String
        /// PyTorch's shape (`[out, in]` for weights).
        public let shape: [Int]
        /// Row-major values.
        public var values: [Float]
        /// Whether AdamW's weight decay applies (every weight, no bias: as transformers' Trainer groups them).
        public var decays: Bool { !name.hasSuffix("bias") }
        /// Whether this is a LoRA A (down-projection) factor.
        public var isLoRAA: Bool { name.hasSuffix("lora_A.weight") }
    }

    /// Where one module's LoRA pair sits in `parameters`.
    struct PairIndex: Sendable {
        let a: Int
        let b: Int
        let rank: Int
        let scaling: Float
    }

    /// Every trainable tensor, LoRA pairs by layer and slot, then the classifier weight and bias. An optimiser
    /// changes the values; names and shapes stay as laid out.
    public var parameters: [Parameter]
    /// Label names, one per classifier output.
    public let labels: [String]
    /// LoRA rank and alpha (`scaling = alpha / rank`).
    public let rank: Int
    public let alpha: Double
    /// Adapted modules of every layer.
    public let targets: [LinearSlot]
    /// The encoder family whose module names the tensors carry.
    public let family: EncoderFamily
    /// `[layer][slot.rawValue]` → the pair, when adapted.
    let pairs: [[PairIndex?]]
    /// The head's own dense layer before the classifier (RoBERTa's, DistilBERT's, ModernBERT's; the bias absent
    /// when ModernBERT's `classifier_bias` is off), trained; nil for BERT, whose frozen pooler stands there.
    let headDense: (weight: Int, bias: Int?)?
    /// ModernBERT's `head.norm` (its bias only with `norm_bias`).
    let headNorm: (gamma: Int, beta: Int?)?
    let classifierWeight: Int
    let classifierBias: Int

    /// A new adapter initialised as PEFT and transformers do: A Kaiming-uniform (`a = √5`, so U(±1/√in)), B zero,
    /// the classifier N(0, 0.02) with a zero bias; `seed` makes it reproducible.
    public init(model: BertModel, labels: [String], rank: Int, alpha: Double, targets: [LinearSlot], seed: UInt64) throws(TrainingError) {
        var random = SeededRandom(seed: seed)
        try self.init(model: model, labels: labels, rank: rank, alpha: alpha, targets: targets) { name, shape in
            let count = shape.reduce(1, *)
            if name.hasSuffix("lora_A.weight") {
                let bound = 1 / Float(shape[1]).squareRoot()
                return (0..<count).map { _ in random.uniform(-bound, bound) }
            }
            // The head's weights as transformers initialises them (initializer_range 0.02; a norm's scale 1).
            if name.hasSuffix("norm.weight") { return [Float](repeating: 1, count: count) }
            if name.hasSuffix(".weight"), !name.contains(".lora_") { return (0..<count).map { _ in 0.02 * random.normal() } }
            return [Float](repeating: 0, count: count)
        }
    }

    /// An adapter whose every tensor comes from `tensors` (by PEFT's name; each must be there with its shape): a
    /// federated round's global adapter.
    public init(
        model: BertModel, labels: [String], rank: Int, alpha: Double, targets: [LinearSlot], tensors: [String: [Float]]
    ) throws(TrainingError) {
        try self.init(model: model, labels: labels, rank: rank, alpha: alpha, targets: targets) { name, shape throws(TrainingError) in
            guard let values = tensors[name], values.count == shape.reduce(1, *) else { throw .shape(name: name, expected: shape) }
            return values
        }
    }

    /// Lays out the parameters, taking each tensor's values from `initial(name, shape)`.
    init(
        model: BertModel, labels: [String], rank: Int, alpha: Double, targets: [LinearSlot],
        initial: (String, [Int]) throws(TrainingError) -> [Float]
    ) throws(TrainingError) {
        guard labels.count >= 2 else { throw .invalidOptions("a classifier needs at least 2 labels, got \(labels.count)") }
        guard (1...256).contains(rank) else { throw .invalidOptions("rank must be 1–256, got \(rank)") }
        guard alpha > 0, alpha.isFinite else { throw .invalidOptions("alpha must be positive, got \(alpha)") }
        guard !targets.isEmpty else { throw .invalidOptions("no target modules") }
        let family = model.config.family
        switch family {
        case .bert:
            guard model.weights.pooler != nil else { throw .invalidOptions("the base model has no pooler: its classifier input is undefined") }
        case .roberta, .distilbert:
            break
        case .modernbert:
            break
        }
        self.family = family
        // ModernBERT computes Q, K and V in one Linear (attn.Wqkv), which the query slot stands for: asking for any of
        // them adapts it.
        let targets = family == .modernbert ? targets.map { [.key, .value].contains($0) ? LinearSlot.query : $0 } : targets
        self.labels = labels
        self.rank = rank
        self.alpha = alpha
        self.targets = LinearSlot.allCases.filter(targets.contains)
        let scaling = Float(alpha / Double(rank))
        var parameters: [Parameter] = []
        var pairs: [[PairIndex?]] = []
        func add(_ name: String, _ shape: [Int]) throws(TrainingError) -> Int {
            let values = try initial(name, shape)
            guard values.count == shape.reduce(1, *) else { throw .shape(name: name, expected: shape) }
            parameters.append(Parameter(name: name, shape: shape, values: values))
            return parameters.count - 1
        }
        for (layer, weights) in model.weights.layers.enumerated() {
            var row = [PairIndex?](repeating: nil, count: LinearSlot.allCases.count)
            for slot in self.targets {
                // ModernBERT's query slot is the whole Wqkv.
                let linear = model.linear(of: .linear(layer: layer, slot: slot)) ?? weights[slot]
                let prefix = "base_model.model." + family.moduleName(layer: layer, slot: slot) + "."
                let a = try add(prefix + "lora_A.weight", [rank, linear.inFeatures])
                let b = try add(prefix + "lora_B.weight", [linear.outFeatures, rank])
                row[slot.rawValue] = PairIndex(a: a, b: b, rank: rank, scaling: scaling)
            }
            pairs.append(row)
        }
        self.pairs = pairs
        let hidden = model.config.hiddenSize
        let head = Self.headModules(family)
        let denseBias = model.config.modernBERT?.classifierBias ?? true
        if let dense = head.dense {
            headDense = (
                try add("base_model.model.\(dense).weight", [hidden, hidden]),
                denseBias ? try add("base_model.model.\(dense).bias", [hidden]) : nil)
        } else {
            headDense = nil
        }
        if let layout = model.config.modernBERT {
            headNorm = (try add("base_model.model.head.norm.weight", [hidden]), layout.normBias ? try add("base_model.model.head.norm.bias", [hidden]) : nil)
        } else {
            headNorm = nil
        }
        classifierWeight = try add("base_model.model.\(head.classifier).weight", [labels.count, hidden])
        classifierBias = try add("base_model.model.\(head.classifier).bias", [labels.count])
        self.parameters = parameters
    }

    /// Reads an adapter PEFT saved (LoRA, `SEQ_CLS`, a classifier in `modules_to_save`) to train it further.
    /// Rank and alpha patterns, rsLoRA, DoRA, `fan_in_fan_out` and layer subsets are not trained here.
    public init(directory: String, model: BertModel) throws(TrainingError) {
        let config: LoRAConfig
        let labels: [String]
        let file: SafeTensorsFile
        do {
            config = try LoRAConfig(json: Array(try Data(contentsOf: URL(fileURLWithPath: directory + "/adapter_config.json"))), adapter: directory)
            let decoded = try JSONDecoder().decode([String: [String]].self, from: Data(contentsOf: URL(fileURLWithPath: directory + "/labels.json")))
            labels = decoded["labels"] ?? []
            file = try SafeTensorsFile(path: directory + "/adapter_model.safetensors")
        } catch {
            throw .unreadable(path: directory, reason: "\(error)")
        }
        guard config.method == .lora, config.rankPattern.isEmpty, config.alphaPattern.isEmpty, !config.useRSLoRA, !config.useDoRA, !config.fanInFanOut, config.layersToTransform == nil else {
            throw .invalidOptions("\(directory): rank or alpha patterns, rsLoRA, DoRA, fan_in_fan_out and layer subsets cannot be trained here; only LoRA is")
        }
        let targets: [LinearSlot]
        let family = model.config.family
        switch config.targets {
        case .names(let names):
            targets = LinearSlot.allCases.filter { slot in
                // ModernBERT's Wqkv is the query slot alone.
                if family == .modernbert, slot == .key || slot == .value { return false }
                let name = family.moduleName(layer: 0, slot: slot)
                return names.contains { name == $0 || name.hasSuffix("." + $0) }
            }
        case .regex(let pattern):
            // PEFT matches the whole module name; layers are adapted alike here, so layer 0 decides.
            let expression = try? NSRegularExpression(pattern: "^(?:" + pattern + ")$")
            targets = LinearSlot.allCases.filter { slot in
                if family == .modernbert, slot == .key || slot == .value { return false }
                let name = family.moduleName(layer: 0, slot: slot)
                return expression?.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)) != nil
            }
        case .allLinear:
            throw .invalidOptions("\(directory): target_modules all-linear adapts the pooler too, which is not trained here")
        }
        try self.init(model: model, labels: labels, rank: config.rank, alpha: config.alpha, targets: targets) { name, shape throws(TrainingError) in
            do {
                let tensor = try file.tensor(name)
                guard tensor.shape == shape else { throw TrainingError.shape(name: name, expected: shape) }
                return tensor.storage.values
            } catch let error as TrainingError {
                throw error
            } catch {
                throw .unreadable(path: directory + "/adapter_model.safetensors", reason: "\(error)")
            }
        }
    }

    /// Writes the adapter as PEFT saves one: `adapter_config.json`, `adapter_model.safetensors` (F32, PEFT's
    /// tensor names) and `labels.json`, so `PeftModel.from_pretrained` and adapterd load it alike. `baseModel` is
    /// what `base_model_name_or_path` records: the base model it was trained on (a hub id or a directory).
    public func write(to directory: String, baseModel: String) throws(TrainingError) {
        try Self.write(
            parameters.map { ($0.name, $0.shape, $0.values) }, labels: labels, rank: rank, alpha: alpha, targets: targets,
            family: family, baseModel: baseModel, to: directory)
    }

    /// The head's modules in the family's task model: its own dense layer (nil: BERT's pooler, frozen) and the
    /// classifier.
    static func headModules(_ family: EncoderFamily) -> (dense: String?, classifier: String) {
        switch family {
        case .roberta: return ("classifier.dense", "classifier.out_proj")
        case .distilbert: return ("pre_classifier", "classifier")
        case .modernbert: return ("head.dense", "classifier")
        case .bert: return (nil, "classifier")
        }
    }

    /// Writes the tensors of a LoRA adapter with a classifier head (PEFT's names, as `parameters` lays them out) as
    /// PEFT's files, without the base model at hand (a fleet controller writing a federated run's result); `family`
    /// decides `target_modules` and `modules_to_save`.
    public static func write(
        _ tensors: [(name: String, shape: [Int], values: [Float])], labels: [String], rank: Int, alpha: Double, targets: [LinearSlot],
        family: EncoderFamily = .bert, baseModel: String, to directory: String
    ) throws(TrainingError) {
        var writer = SafeTensorsWriter()
        writer.metadata = ["format": "pt"]
        for tensor in tensors { writer.add(tensor.name, shape: tensor.shape, values: tensor.values) }
        let config: [String: Any] = [
            "peft_type": "LORA", "task_type": "SEQ_CLS", "r": rank, "lora_alpha": alpha,
            "target_modules": targetModules(LinearSlot.allCases.filter(targets.contains), family: family),
            "lora_dropout": 0.0, "bias": "none",
            "modules_to_save": Self.modulesToSave(family),
            "base_model_name_or_path": baseModel, "fan_in_fan_out": false, "inference_mode": true,
            "init_lora_weights": true, "use_rslora": false, "use_dora": false, "rank_pattern": [String: Int](),
            "alpha_pattern": [String: Double](), "layers_to_transform": NSNull(), "layers_pattern": NSNull(),
            "revision": NSNull(), "auto_mapping": NSNull(),
        ]
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
                .write(to: URL(fileURLWithPath: directory + "/adapter_config.json"), options: .atomic)
            try writer.data().write(to: URL(fileURLWithPath: directory + "/adapter_model.safetensors"), options: .atomic)
            try JSONSerialization.data(withJSONObject: ["labels": labels], options: [.sortedKeys])
                .write(to: URL(fileURLWithPath: directory + "/labels.json"), options: .atomic)
        } catch {
            throw .unwritable(path: directory, reason: error.localizedDescription)
        }
    }

    /// `target_modules` as PEFT matches it (a name matches a module whose path ends in it): the short names, or a
    /// regular expression when the feed-forward `output.dense` is adapted without `attention.output.dense`,
    /// which that name would match too.
    var targetModules: Any { Self.targetModules(targets, family: family) }

    /// What PEFT saves whole beside the pairs: the family's head.
    static func modulesToSave(_ family: EncoderFamily) -> [String] {
        switch family {
        case .distilbert: return ["pre_classifier", "classifier", "score"]
        case .modernbert: return ["head", "classifier", "score"]
        case .bert, .roberta: return ["classifier", "score"]
        }
    }

    static func targetModules(_ targets: [LinearSlot], family: EncoderFamily = .bert) -> Any {
        if family == .modernbert {
            // attn.Wo and mlp.Wo share their last name.
            return targets.map { slot -> String in
                switch slot {
                case .query, .key, .value: return "Wqkv"
                case .attentionOutput: return "attn.Wo"
                case .intermediate: return "Wi"
                case .output: return "mlp.Wo"
                }
            }
        }
        if family == .distilbert {
            // Every DistilBERT module's last name is its own (q_lin … lin2).
            return targets.map { String(family.moduleName(layer: 0, slot: $0).split(separator: ".").last!) }
        }
        if targets.contains(.output) && !targets.contains(.attentionOutput) {
            return #".*\.layer\.\d+\.("# + targets.map { $0.path.replacingOccurrences(of: ".", with: #"\."#) }.joined(separator: "|") + ")"
        }
        return targets.map { slot -> String in
            switch slot {
            case .query, .key, .value: return String(slot.path.split(separator: ".").last!)
            default: return slot.path
            }
        }
    }

    /// Bytes of the trainable parameters.
    public var byteSize: Int { parameters.reduce(0) { $0 + $1.values.count * 4 } }
}
