import Foundation

/// A PEFT LoRA adapter validated against one base model and ready to run unmerged.
///
/// Immutable once loaded; requests share it by reference, and the engine groups batch rows by adapter identity.
public final class LoRAAdapter: Sendable {
    /// Name used in messages (the directory name unless given).
    public let name: String
    /// The parsed `adapter_config.json`.
    public let config: LoRAConfig
    /// LoRA pairs of the encoder, indexed `[layer][LinearSlot.rawValue]`.
    public let layers: [[LoRAWeights?]]
    /// LoRA pairs of the embedding tables, indexed by `EmbeddingTable.rawValue`.
    public let embeddings: [LoRAWeights?]
    /// LoRA pair of the pooler's dense layer.
    public let pooler: LoRAWeights?
    /// IA³ vectors of the encoder, indexed `[layer][LinearSlot.rawValue]` (all nil for LoRA and DoRA adapters).
    public let scalings: [[IA3Scaling?]]
    /// LoKr updates kept as Kronecker factors, indexed `[layer][LinearSlot.rawValue]` (where that is cheaper than a pair).
    public let kroneckers: [[KroneckerDelta?]]
    /// The classification head, when the adapter saved one; without it the adapter yields embeddings.
    public let head: ClassifierHead?
    /// Bytes of adapter weights held in memory.
    public let byteSize: Int
    /// Largest rank of any module (sizes the engine's scratch space).
    public let maxRank: Int
    /// Scratch floats per row its Kronecker terms need (sizes the engine's scratch space too).
    public let kroneckerScratch: Int
    /// What INT8 engines measured of this adapter's labels (`LabelCheck`).
    public let labelCheck = AdapterLabelCheck()
    /// Whether the adapter changes any encoder layer (what `InferenceEngine.prepareMerged` can merge).
    public let changesEncoder: Bool
    /// The layers engines merged this adapter into (`InferenceEngine.prepareMerged`).
    public let merges = AdapterMerges()

    /// Label names of the head, or nil for an embedding adapter.
    public var labels: [String]? { head?.labels }

    /// Whether the adapter changes `slot` of encoder layer `layer` (a pair, LoKr's factors or an IA³ vector).
    func changes(layer: Int, slot: LinearSlot) -> Bool {
        layers[layer][slot.rawValue] != nil || kroneckers[layer][slot.rawValue] != nil || scalings[layer][slot.rawValue] != nil
    }

    /// The groups of encoder layers the adapter changes (`[layer: inputs]`, as `ExecutionPlan.Layer.input(of:)`
    /// numbers them); empty when it changes none.
    var changedGroups: [Int: Set<Int>] {
        var changed: [Int: Set<Int>] = [:]
        for layer in layers.indices {
            for slot in LinearSlot.allCases where changes(layer: layer, slot: slot) {
                changed[layer, default: []].insert(ExecutionPlan.Layer.input(of: slot))
            }
        }
        return changed
    }

    /// The same adapter without its encoder terms (what is left to apply once they are merged into the layers).
    var withoutEncoderTerms: LoRAAdapter {
        LoRAAdapter(
            name: name, config: config, layers: layers.map { $0.map { _ in nil } }, embeddings: embeddings, pooler: pooler, head: head)
    }

    /// Every adapted module and its pair.
    public var modules: [(module: BertModule, weights: LoRAWeights)] {
        var result: [(BertModule, LoRAWeights)] = []
        for (table, lora) in zip(EmbeddingTable.allCases, embeddings) { if let lora { result.append((.embedding(table), lora)) } }
        for (index, slots) in layers.enumerated() {
            for (slot, lora) in zip(LinearSlot.allCases, slots) { if let lora { result.append((.linear(layer: index, slot: slot), lora)) } }
        }
        if let pooler { result.append((.pooler, pooler)) }
        return result
    }

    init(
        name: String, config: LoRAConfig, layers: [[LoRAWeights?]], embeddings: [LoRAWeights?], pooler: LoRAWeights?, head: ClassifierHead?,
        scalings: [[IA3Scaling?]]? = nil, kroneckers: [[KroneckerDelta?]]? = nil
    ) {
        self.name = name
        self.scalings = scalings ?? layers.map { $0.map { _ in nil } }
        self.kroneckers = kroneckers ?? layers.map { $0.map { _ in nil } }
        self.config = config
        self.layers = layers
        self.embeddings = embeddings
        self.pooler = pooler
        self.head = head
        var bytes = 0
        var rank = 0
        for lora in layers.joined().compactMap({ $0 }) + embeddings.compactMap({ $0 }) + [pooler].compactMap({ $0 }) {
            bytes += 4 * (lora.a.count + lora.scaledBTransposed.count + (lora.magnitudeScale?.count ?? 0))
            rank = max(rank, lora.rank)
        }
        for scaling in self.scalings.joined().compactMap({ $0 }) { bytes += 4 * scaling.vector.count }
        for kronecker in self.kroneckers.joined().compactMap({ $0 }) { bytes += 4 * (kronecker.w1.count + kronecker.w2.count) }
        if let head {
            for linear in [head.classifier, head.pooler].compactMap({ $0 }) {
                bytes += 4 * (linear.weight.count + (linear.bias?.count ?? 0))
            }
        }
        byteSize = bytes
        maxRank = rank
        kroneckerScratch = self.kroneckers.joined().compactMap { $0?.scratchPerRow }.max() ?? 0
        changesEncoder = layers.joined().contains { $0 != nil } || self.kroneckers.joined().contains { $0 != nil }
            || self.scalings.joined().contains { $0 != nil }
    }

    /// Loads `adapter_config.json`, `adapter_model.safetensors` and optional `labels.json` from `directory`, and
    /// checks every tensor against `model`.
    public convenience init(directory: String, model: BertModel, name: String? = nil) throws(AdapterError) {
        let name = name ?? URL(fileURLWithPath: directory).lastPathComponent
        let configPath = directory + "/adapter_config.json"
        let weightsPath = directory + "/adapter_model.safetensors"
        guard let configBytes = FileManager.default.contents(atPath: configPath) else {
            throw .missingFile(adapter: name, file: configPath)
        }
        guard FileManager.default.fileExists(atPath: weightsPath) else {
            throw .missingFile(adapter: name, file: weightsPath)
        }
        let config = try LoRAConfig(json: [UInt8](configBytes), adapter: name)
        let file: SafeTensorsFile
        do {
            file = try SafeTensorsFile(path: weightsPath)
        } catch {
            throw .weights(adapter: name, error)
        }
        let labels = try Self.readLabels(path: directory + "/labels.json", adapter: name)
        let problemType = try Self.readProblemType(path: directory + "/labels.json", adapter: name)
        try self.init(name: name, config: config, file: file, labels: labels, model: model, problemType: problemType)
    }

    /// Builds an adapter from an already parsed config and opened weights file.
    /// `problemType` is the head's (nil: transformers' default, regression for one output, else single-label).
    public convenience init(
        name: String, config: LoRAConfig, file: SafeTensorsFile, labels: [String]?, model: BertModel, problemType: ClassifierHead.ProblemType? = nil
    ) throws(AdapterError) {
        let builder = try AdapterBuilder(name: name, config: config, file: file, model: model)
        var parts = try builder.build(labels: labels)
        if var head = parts.head {
            head.problemType = problemType ?? (head.classifier.outFeatures == 1 ? .regression : .singleLabel)
            if head.problemType == .regression, head.classifier.outFeatures != 1 {
                throw .invalidLabels(adapter: name, reason: "problem_type regression needs one output, the classifier has \(head.classifier.outFeatures)")
            }
            parts.head = head
        }
        self.init(
            name: name, config: config, layers: parts.layers, embeddings: parts.embeddings, pooler: parts.pooler, head: parts.head,
            scalings: parts.scalings, kroneckers: parts.kroneckers)
    }

    /// `problem_type` from `labels.json` (as transformers' config names it), nil when absent.
    static func readProblemType(path: String, adapter: String) throws(AdapterError) -> ClassifierHead.ProblemType? {
        guard let data = FileManager.default.contents(atPath: path), let value = try? JSONValue.parse([UInt8](data)) else { return nil }
        switch value["problem_type"] {
        case nil, .null?: return nil
        case .string(let name)?:
            guard let type = ClassifierHead.ProblemType(rawValue: name) else {
                throw .invalidLabels(adapter: adapter, reason: "problem_type '\(name)' is not single_label_classification, multi_label_classification or regression")
            }
            return type
        default: throw .invalidLabels(adapter: adapter, reason: "problem_type must be a string")
        }
    }

    static func readLabels(path: String, adapter: String) throws(AdapterError) -> [String]? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let value: JSONValue
        do {
            value = try JSONValue.parse([UInt8](data))
        } catch {
            throw .invalidLabels(adapter: adapter, reason: "not valid JSON: \(error)")
        }
        // Either {"labels": [...]} or a bare list.
        let list = value["labels"] ?? value
        guard case .array(let items) = list else { throw .invalidLabels(adapter: adapter, reason: "expected {\"labels\": [names…]}") }
        return try items.map { item throws(AdapterError) -> String in
            guard case .string(let label) = item else { throw .invalidLabels(adapter: adapter, reason: "labels must be strings") }
            return label
        }
    }
}
