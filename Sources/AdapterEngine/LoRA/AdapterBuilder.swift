import Foundation

/// Matches an adapter file's tensors to the modules its config targets and validates every shape.
struct AdapterBuilder {
    let name: String
    let config: LoRAConfig
    let file: SafeTensorsFile
    let model: BertModel
    let matcher: TargetMatcher
    let catalog: ModuleCatalog

    static let prefix = "base_model.model."

    init(name: String, config: LoRAConfig, file: SafeTensorsFile, model: BertModel) throws(AdapterError) {
        self.name = name
        self.config = config
        self.file = file
        self.model = model
        do {
            matcher = try TargetMatcher(config: config)
        } catch {
            throw .invalidConfig(adapter: name, field: "target_modules", reason: "invalid regular expression: \(error)")
        }
        // RoBERTa's task model has no pooler (its head holds its own dense layer), whatever the base checkpoint holds.
        let family = model.config.family
        catalog = ModuleCatalog(layers: model.config.numHiddenLayers, hasPooler: family == .bert && model.weights.pooler != nil, family: family)
    }

    func build(labels: [String]?) throws(AdapterError) -> (layers: [[LoRAWeights?]], embeddings: [LoRAWeights?], pooler: LoRAWeights?, head: ClassifierHead?, scalings: [[IA3Scaling?]], kroneckers: [[KroneckerDelta?]]) {
        // Sort the file's tensors into LoRA pairs and saved modules, by module name.
        var loraTensors: [String: [String: TensorInfo]] = [:]
        var savedTensors: [String: [String: TensorInfo]] = [:]
        for (tensorName, info) in file.tensors {
            guard tensorName.hasPrefix(Self.prefix) else { throw .unexpectedTensor(adapter: name, tensor: tensorName) }
            var path = String(tensorName.dropFirst(Self.prefix.count))
            if let (module, part) = Self.loraPart(of: path) {
                loraTensors[module, default: [:]][part] = info
                continue
            }
            guard let dot = path.lastIndex(of: ".") else { throw .unexpectedTensor(adapter: name, tensor: tensorName) }
            let parameter = String(path[path.index(after: dot)...])
            path = String(path[..<dot])
            for wrapper in [".modules_to_save.default", ".modules_to_save"] where path.hasSuffix(wrapper) {
                path.removeLast(wrapper.count)
                break
            }
            savedTensors[path, default: [:]][parameter] = info
        }

        var layers = [[LoRAWeights?]](repeating: Array(repeating: nil, count: LinearSlot.allCases.count), count: model.config.numHiddenLayers)
        var embeddings = [LoRAWeights?](repeating: nil, count: EmbeddingTable.allCases.count)
        var pooler: LoRAWeights?
        var scalings = layers.map { $0.map { _ -> IA3Scaling? in nil } }
        var kroneckers = layers.map { $0.map { _ -> KroneckerDelta? in nil } }
        var matchedAny = false
        for entry in catalog.entries where matcher.isTargeted(entry) {
            matchedAny = true
            guard let module = entry.module, module != .classifier else {
                throw .unsupportedTarget(adapter: name, module: entry.name, moduleType: entry.module == .classifier ? "the classification head, saved whole by modules_to_save" : entry.type)
            }
            if config.method == .ia3 {
                let tensors = loraTensors.removeValue(forKey: entry.name) ?? [:]
                guard case .linear(let layer, let slot) = module else {
                    throw .methodCannotAdapt(adapter: name, module: entry.name, reason: "\(entry.type) with IA³; IA³ is served on the encoder's Linear layers")
                }
                scalings[layer][slot.rawValue] = try ia3(for: entry.name, slot: slot, shape: model.shape(of: module)!, tensors: tensors)
                continue
            }
            let tensors = loraTensors.removeValue(forKey: entry.name) ?? [:]
            let pair: LoRAWeights?
            switch config.method {
            case .lora, .ia3: pair = try lora(for: entry.name, module: module, tensors: tensors)
            case .adalora: pair = try adalora(for: entry.name, module: module, tensors: tensors)
            case .loha: pair = try loha(for: entry.name, module: module, tensors: tensors)
            case .lokr:
                switch try lokr(for: entry.name, module: module, tensors: tensors) {
                case .pair(let weights): pair = weights
                case .kronecker(let delta):
                    // Only Linear layers of the encoder take this form (see `lokr`).
                    guard case .linear(let layer, let slot) = module else { continue }
                    kroneckers[layer][slot.rawValue] = delta
                    continue
                }
            }
            switch module {
            case .embedding(let table): embeddings[table.rawValue] = pair
            case .linear(let layer, let slot): layers[layer][slot.rawValue] = pair
            case .pooler: pooler = pair
            case .classifier: break
            }
        }
        guard matchedAny else { throw .noTargetMatched(adapter: name, targets: Self.describe(config.targets)) }
        if let (module, parts) = loraTensors.first {
            throw .unexpectedTensor(adapter: name, tensor: Self.prefix + module + "." + (parts.keys.sorted().first ?? ""))
        }
        let head = try classifierHead(saved: savedTensors, labels: labels)
        return (layers, embeddings, pooler, head, scalings, kroneckers)
    }

    /// The IA³ vector of `moduleName`: `[1, in]` when it scales the inputs (a `feedforward_modules` match), `[out, 1]`
    /// when it scales the outputs, as PEFT shapes `ia3_l`.
    func ia3(for moduleName: String, slot: LinearSlot, shape: (inFeatures: Int, outFeatures: Int), tensors: [String: TensorInfo]) throws(AdapterError) -> IA3Scaling {
        guard let info = tensors["L"] else { throw .missingTensor(adapter: name, tensor: Self.prefix + moduleName + ".ia3_l") }
        let scalesInput = isFeedforward(moduleName)
        if scalesInput, [LinearSlot.query, .key, .value].contains(slot) {
            // Q, K and V share one input and one product: scaling the input of one of them alone would need its own.
            throw .methodCannotAdapt(adapter: name, module: moduleName, reason: "an attention projection in feedforward_modules (IA³ input scaling is served on attention.output.dense, intermediate.dense and output.dense)")
        }
        let expected = scalesInput ? [1, shape.inFeatures] : [shape.outFeatures, 1]
        guard info.shape == expected else {
            let reason = scalesInput ? "feedforward_modules names '\(moduleName)': its \(shape.inFeatures) inputs are scaled" : "'\(moduleName)' has \(shape.outFeatures) outputs"
            throw .shapeMismatch(adapter: name, tensor: info.name, shape: info.shape, expected: expected, reason: reason)
        }
        return IA3Scaling(vector: try tensor(info), scalesInput: scalesInput)
    }

    /// Whether IA³ scales `moduleName`'s inputs: PEFT compares `feedforward_modules` entries with a plain suffix test
    /// (a regular expression must match the whole name).
    func isFeedforward(_ moduleName: String) -> Bool {
        switch config.feedforwardModules {
        case .names(let names)?: return names.contains { moduleName.hasSuffix($0) }
        case .regex(let pattern)?: return (try? Regex(pattern).wholeMatch(in: moduleName)) != nil
        case .allLinear?, nil: return false
        }
    }

    /// Splits `module.lora_A.weight` (and PEFT's other spellings) into the module path and "A"/"B".
    static func loraPart(of path: String) -> (String, String)? {
        for (suffix, part) in [
            (".lora_A.weight", "A"), (".lora_B.weight", "B"), (".lora_A.default.weight", "A"), (".lora_B.default.weight", "B"),
            (".lora_embedding_A", "A"), (".lora_embedding_B", "B"), (".lora_embedding_A.default", "A"), (".lora_embedding_B.default", "B"),
            (".lora_A", "A"), (".lora_B", "B"), (".lora_E", "E"),
            (".hada_w1_a", "w1a"), (".hada_w1_b", "w1b"), (".hada_w2_a", "w2a"), (".hada_w2_b", "w2b"), (".hada_t1", "t1"), (".hada_t2", "t2"),
            (".lokr_w1", "w1"), (".lokr_w1_a", "w1a"), (".lokr_w1_b", "w1b"), (".lokr_w2", "w2"), (".lokr_w2_a", "w2a"), (".lokr_w2_b", "w2b"),
            (".lokr_t2", "t2"),
            (".ia3_l", "L"), (".ia3_l.default", "L"), (".lora_magnitude_vector", "M"), (".lora_magnitude_vector.default.weight", "M"), (".lora_magnitude_vector.weight", "M"),
        ] where path.hasSuffix(suffix) {
            return (String(path.dropLast(suffix.count)), part)
        }
        return nil
    }

    func lora(for moduleName: String, module: BertModule, tensors: [String: TensorInfo]) throws(AdapterError) -> LoRAWeights {
        try requireOnly(["A", "B", "M"], in: tensors, moduleName: moduleName)
        let isEmbedding: Bool
        if case .embedding = module { isEmbedding = true } else { isEmbedding = false }
        let suffixA = isEmbedding ? ".lora_embedding_A" : ".lora_A.weight"
        let suffixB = isEmbedding ? ".lora_embedding_B" : ".lora_B.weight"
        guard let infoA = tensors["A"] else { throw .missingTensor(adapter: name, tensor: Self.prefix + moduleName + suffixA) }
        guard let infoB = tensors["B"] else { throw .missingTensor(adapter: name, tensor: Self.prefix + moduleName + suffixB) }
        // The catalog only lists modules the model has.
        let shape = model.shape(of: module)!
        let rank = matcher.rank(for: moduleName)
        let alpha = matcher.alpha(for: moduleName)
        let rankSource = config.rankPattern.isEmpty ? "r" : "r/rank_pattern"
        let expectedA = [rank, shape.inFeatures]
        let expectedB = [shape.outFeatures, rank]
        if infoA.shape != expectedA {
            let reason = infoA.shape.count == 2 && infoA.shape[0] == rank
                ? "base layer '\(moduleName)' takes \(shape.inFeatures) inputs"
                : "\(rankSource) gives rank \(rank) for '\(moduleName)'"
            throw .shapeMismatch(adapter: name, tensor: infoA.name, shape: infoA.shape, expected: expectedA, reason: reason)
        }
        if infoB.shape != expectedB {
            let reason = infoB.shape.count == 2 && infoB.shape[1] == rank
                ? "base layer '\(moduleName)' has \(shape.outFeatures) outputs"
                : "\(rankSource) gives rank \(rank) for '\(moduleName)'"
            throw .shapeMismatch(adapter: name, tensor: infoB.name, shape: infoB.shape, expected: expectedB, reason: reason)
        }
        let scaling = config.useRSLoRA ? alpha / Double(rank).squareRoot() : alpha / Double(rank)
        guard Float(scaling).isFinite, abs(scaling) <= Double(Self.largestValue) else {
            throw .invalidConfig(adapter: name, field: "lora_alpha", reason: "the scaling alpha/r of '\(moduleName)' is \(scaling), beyond ±\(Self.largestValue)")
        }
        let a = try tensor(infoA), b = try tensor(infoB)
        guard config.useDoRA else {
            if let magnitude = tensors["M"] { throw .unexpectedTensor(adapter: name, tensor: magnitude.name) }
            return LoRAWeights(a: a, b: b, rank: rank, scaling: Float(scaling))
        }
        guard !isEmbedding else {
            throw .methodCannotAdapt(adapter: name, module: moduleName, reason: "an embedding table with DoRA (use_dora); DoRA is served on Linear layers")
        }
        guard let infoM = tensors["M"] else { throw .missingTensor(adapter: name, tensor: Self.prefix + moduleName + ".lora_magnitude_vector") }
        guard infoM.shape == [shape.outFeatures] else {
            throw .shapeMismatch(adapter: name, tensor: infoM.name, shape: infoM.shape, expected: [shape.outFeatures], reason: "base layer '\(moduleName)' has \(shape.outFeatures) outputs")
        }
        guard let base = model.linear(of: module) else {
            throw .methodCannotAdapt(adapter: name, module: moduleName, reason: "a module DoRA cannot adapt here")
        }
        let magnitude = try tensor(infoM)
        return LoRAWeights(
            a: a, b: b, rank: rank, scaling: Float(scaling),
            magnitudeScale: Self.doraScale(base: base.weight, a: a, b: b, scaling: scaling, magnitude: magnitude))
    }

    /// DoRA's `g = m / ‖W + s·B·A‖`, row by row (one entry per output), in double precision: PEFT computes the norm
    /// once per forward from the same tensors, detached, so at inference it is a constant of the adapter.
    static func doraScale(base: Tensor, a: Tensor, b: Tensor, scaling: Double, magnitude: Tensor) -> Tensor {
        let outputs = base.shape[0], inputs = base.shape[1], rank = a.shape[0]
        let w = base.pointer, pa = a.pointer, pb = b.pointer, m = magnitude.pointer
        return Tensor(shape: [outputs], storage: FloatStorage(count: outputs) { scale in
            var row = [Double](repeating: 0, count: inputs)
            for output in 0..<outputs {
                for column in 0..<inputs { row[column] = Double(w[output * inputs + column]) }
                for k in 0..<rank {
                    let factor = scaling * Double(pb[output * rank + k])
                    for column in 0..<inputs { row[column] += factor * Double(pa[k * inputs + column]) }
                }
                let norm = row.reduce(0) { $0 + $1 * $1 }.squareRoot()
                scale[output] = Float(Double(m[output]) / norm)
            }
        })
    }

    /// Largest magnitude a weight may have: Float16's largest finite value, far beyond anything training produces.
    /// Larger values (3e38 say) overflow to infinity in the first product and make every output NaN, as in PEFT.
    static let largestValue: Float = 65_504

    /// The tensor `info` as F32, refused with its name when a value is NaN, infinite or beyond `largestValue`.
    func tensor(_ info: TensorInfo) throws(AdapterError) -> Tensor {
        let tensor: Tensor
        do {
            tensor = try file.tensor(info)
        } catch {
            throw .weights(adapter: name, error)
        }
        let bad = tensor.storage.withUnsafeBufferPointer { values in
            values.firstIndex { !(abs($0) <= Self.largestValue) }.map { ($0, values[$0]) }
        }
        if let (index, value) = bad { throw .invalidValue(adapter: name, tensor: info.name, index: index, value: value, limit: Self.largestValue) }
        return tensor
    }

    func classifierHead(saved: [String: [String: TensorInfo]], labels: [String]?) throws(AdapterError) -> ClassifierHead? {
        let hidden = model.config.hiddenSize
        var classifier: LinearWeights?
        var pooler: LinearWeights?
        var norm: LayerNormWeights?
        let modern = model.config.modernBERT
        for (module, parameters) in saved.sorted(by: { $0.key < $1.key }) {
            // PEFT wraps a module in modules_to_save when its name ends with an entry.
            guard config.modulesToSave.contains(where: { module.hasSuffix($0) || module.hasPrefix($0 + ".") }) else {
                throw .unexpectedTensor(adapter: name, tensor: Self.prefix + module + "." + (parameters.keys.sorted().first ?? ""))
            }
            let encoder = model.config.encoderName
            switch module {
            case "classifier" where encoder != "roberta", "classifier.out_proj" where encoder == "roberta":
                guard let weight = parameters["weight"] else { throw .missingTensor(adapter: name, tensor: Self.prefix + module + ".weight") }
                guard weight.shape.count == 2, weight.shape[1] == hidden, weight.shape[0] >= 1 else {
                    throw .shapeMismatch(adapter: name, tensor: weight.name, shape: weight.shape, expected: [weight.shape.first ?? 1, hidden], reason: "the classifier reads the \(hidden)-wide pooled output")
                }
                classifier = try linear(weight: weight, bias: parameters["bias"], outputs: weight.shape[0])
            // RoBERTa's head: tanh(dense(<s>)) then out_proj, the same products as BERT's pooler and classifier.
            // DistilBERT's: relu(pre_classifier([CLS])) then classifier.
            case "bert.pooler.dense" where encoder == "bert" && model.weights.pooler != nil, "classifier.dense" where encoder == "roberta",
                 "pre_classifier" where encoder == "distilbert":
                guard let weight = parameters["weight"] else { throw .missingTensor(adapter: name, tensor: Self.prefix + module + ".weight") }
                guard weight.shape == [hidden, hidden] else {
                    throw .shapeMismatch(adapter: name, tensor: weight.name, shape: weight.shape, expected: [hidden, hidden], reason: "the base pooler is \(hidden)×\(hidden)")
                }
                pooler = try linear(weight: weight, bias: parameters["bias"], outputs: hidden)
            // ModernBERT's head: norm(gelu(dense(pooled))) then classifier, on the pooled rows or on every token.
            case "head.dense" where modern != nil:
                guard let weight = parameters["weight"] else { throw .missingTensor(adapter: name, tensor: Self.prefix + module + ".weight") }
                guard weight.shape == [hidden, hidden] else {
                    throw .shapeMismatch(adapter: name, tensor: weight.name, shape: weight.shape, expected: [hidden, hidden], reason: "ModernBERT's head.dense is \(hidden)×\(hidden)")
                }
                if modern!.classifierBias, parameters["bias"] == nil {
                    throw .missingTensor(adapter: name, tensor: Self.prefix + module + ".bias")
                }
                pooler = try linear(weight: weight, bias: parameters["bias"], outputs: hidden)
            case "head.norm" where modern != nil:
                guard let gamma = parameters["weight"] else { throw .missingTensor(adapter: name, tensor: Self.prefix + module + ".weight") }
                for info in [gamma, parameters["bias"]].compactMap({ $0 }) where info.shape != [hidden] {
                    throw .shapeMismatch(adapter: name, tensor: info.name, shape: info.shape, expected: [hidden], reason: "one value per hidden unit")
                }
                if modern!.normBias, parameters["bias"] == nil {
                    throw .missingTensor(adapter: name, tensor: Self.prefix + module + ".bias")
                }
                let beta = try parameters["bias"].map { info throws(AdapterError) in try tensor(info) }
                norm = LayerNormWeights(gamma: try tensor(gamma), beta: beta ?? Tensor(shape: [hidden], storage: FloatStorage([Float](repeating: 0, count: hidden))))
            default:
                throw .unsupportedOption(adapter: name, field: "modules_to_save", value: "'\(module)' (only the classifier and the pooler may be replaced)")
            }
        }
        guard let classifier else {
            if pooler != nil || norm != nil { throw .missingTensor(adapter: name, tensor: Self.prefix + "classifier.weight") }
            return nil
        }
        let perToken = config.taskType == "TOKEN_CLS"
        if let modern {
            // The head's weights are not in the base checkpoint: without them PEFT would run a random head.
            guard pooler != nil, norm != nil else {
                throw .invalidConfig(adapter: name, field: "modules_to_save", reason: "a ModernBERT classifier needs its head (head.dense and head.norm) saved beside it")
            }
            var head = ClassifierHead(classifier: classifier, pooler: pooler, labels: try labelNames(labels, classifier))
            head.activation = .gelu
            head.norm = norm
            head.normEps = model.config.layerNormEps
            head.pooling = modern.classifierPooling == .mean ? .mean : .first
            head.perToken = perToken
            return head
        }
        if perToken, pooler != nil {
            throw .invalidConfig(adapter: name, field: "modules_to_save", reason: "a token classifier (TOKEN_CLS) reads every token: it has no pooler to replace")
        }
        guard perToken || (model.config.encoderName == "bert" ? (model.weights.pooler != nil || pooler != nil) : pooler != nil) else {
            throw .invalidConfig(adapter: name, field: "modules_to_save", reason: "the adapter has a classifier but nothing pools for it (no base pooler, no classifier.dense)")
        }
        var head = ClassifierHead(classifier: classifier, pooler: pooler, labels: try labelNames(labels, classifier))
        if model.config.family == .distilbert { head.activation = .relu }
        head.perToken = perToken
        return head
    }

    /// `labels`, or transformers' `LABEL_i` names, one per classifier output.
    func labelNames(_ labels: [String]?, _ classifier: LinearWeights) throws(AdapterError) -> [String] {
        let names = labels ?? (0..<classifier.outFeatures).map { "LABEL_\($0)" }
        guard names.count == classifier.outFeatures else {
            throw .invalidLabels(adapter: name, reason: "\(names.count) labels for a classifier with \(classifier.outFeatures) outputs")
        }
        return names
    }

    func linear(weight: TensorInfo, bias: TensorInfo?, outputs: Int) throws(AdapterError) -> LinearWeights {
        if let bias, bias.shape != [outputs] {
            throw .shapeMismatch(adapter: name, tensor: bias.name, shape: bias.shape, expected: [outputs], reason: "one bias per output")
        }
        return LinearWeights(weight: try tensor(weight), bias: try bias.map { info throws(AdapterError) in try tensor(info) })
    }

    static func describe(_ targets: LoRAConfig.Targets) -> String {
        switch targets {
        case .names(let names): return "[" + names.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
        case .regex(let pattern): return "\"\(pattern)\""
        case .allLinear: return "\"all-linear\""
        }
    }
}
