import AdapterEngine
import Foundation

/// The trainable parts of a LoRA adapter for sequence classification: A and B of each targeted linear module and
/// the classifier head (PEFT's `modules_to_save`), named and shaped as PEFT saves them. The base model stays frozen.
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
    /// `[layer][slot.rawValue]` → the pair, when adapted.
    let pairs: [[PairIndex?]]
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
            if name.hasSuffix("classifier.weight") { return (0..<count).map { _ in 0.02 * random.normal() } }
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
        guard model.config.encoderName == "bert" else {
            throw .invalidOptions("training writes BERT's task head; a \(model.config.modelType) checkpoint is served, not trained here yet")
        }
        guard model.weights.pooler != nil else { throw .invalidOptions("the base model has no pooler: its classifier input is undefined") }
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
                let linear = weights[slot]
                let prefix = "base_model.model.bert.encoder.layer.\(layer).\(slot.path)."
                let a = try add(prefix + "lora_A.weight", [rank, linear.inFeatures])
                let b = try add(prefix + "lora_B.weight", [linear.outFeatures, rank])
                row[slot.rawValue] = PairIndex(a: a, b: b, rank: rank, scaling: scaling)
            }
            pairs.append(row)
        }
        self.pairs = pairs
        classifierWeight = try add("base_model.model.classifier.weight", [labels.count, model.config.hiddenSize])
        classifierBias = try add("base_model.model.classifier.bias", [labels.count])
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
        switch config.targets {
        case .names(let names):
            targets = LinearSlot.allCases.filter { slot in names.contains { slot.path == $0 || slot.path.hasSuffix("." + $0) } }
        case .regex(let pattern):
            // PEFT matches the whole module name; layers are adapted alike here, so layer 0 decides.
            let expression = try? NSRegularExpression(pattern: "^(?:" + pattern + ")$")
            targets = LinearSlot.allCases.filter { slot in
                let name = "bert.encoder.layer.0." + slot.path
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
            baseModel: baseModel, to: directory)
    }

    /// Writes the tensors of a LoRA adapter with a classifier head (PEFT's names, as `parameters` lays them out) as
    /// PEFT's files, without the base model at hand (a fleet controller writing a federated run's result).
    public static func write(
        _ tensors: [(name: String, shape: [Int], values: [Float])], labels: [String], rank: Int, alpha: Double, targets: [LinearSlot],
        baseModel: String, to directory: String
    ) throws(TrainingError) {
        var writer = SafeTensorsWriter()
        writer.metadata = ["format": "pt"]
        for tensor in tensors { writer.add(tensor.name, shape: tensor.shape, values: tensor.values) }
        let config: [String: Any] = [
            "peft_type": "LORA", "task_type": "SEQ_CLS", "r": rank, "lora_alpha": alpha,
            "target_modules": targetModules(LinearSlot.allCases.filter(targets.contains)),
            "lora_dropout": 0.0, "bias": "none", "modules_to_save": ["classifier", "score"],
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
    var targetModules: Any { Self.targetModules(targets) }

    static func targetModules(_ targets: [LinearSlot]) -> Any {
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
