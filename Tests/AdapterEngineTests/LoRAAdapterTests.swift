import AdapterEngine
import Foundation
import Testing

@Suite("LoRAAdapter loading and validation")
struct LoRAAdapterTests {
    /// A copy of the reference `intent` adapter whose config has `changes` applied.
    static func adapter(configChanges changes: [String: Any]) throws -> String {
        let directory = try FileManagerCopy.copyAdapter("intent")
        let path = directory + "/adapter_config.json"
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        for (key, value) in changes { config[key] = value }
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: path))
        return directory
    }

    static func loadError(_ directory: String) -> AdapterError? {
        do {
            _ = try LoRAAdapter(directory: directory, model: Fixtures.model)
            return nil
        } catch {
            return error
        }
    }

    /// An adapter directory holding `tensors` and a config targeting `targets`.
    static func adapter(targets: [String], rank: Int = 8, tensors: (inout SafeTensorsWriter) -> Void) throws -> String {
        let directory = Fixtures.temporaryDirectory() + "/custom"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let config: [String: Any] = ["peft_type": "LORA", "r": rank, "lora_alpha": 16, "target_modules": targets, "bias": "none"]
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: directory + "/adapter_config.json"))
        var writer = SafeTensorsWriter()
        tensors(&writer)
        try writer.data().write(to: URL(fileURLWithPath: directory + "/adapter_model.safetensors"))
        return directory
    }

    static func pair(_ writer: inout SafeTensorsWriter, module: String, rank: Int, inputs: Int, outputs: Int) {
        writer.add("base_model.model.\(module).lora_A.weight", shape: [rank, inputs], values: Array(repeating: 0.01, count: rank * inputs))
        writer.add("base_model.model.\(module).lora_B.weight", shape: [outputs, rank], values: Array(repeating: 0.01, count: outputs * rank))
    }

    @Test("the reference adapters load with their ranks, scalings and sizes")
    func referenceAdapters() throws {
        let intent = try Fixtures.adapter("intent")
        #expect(intent.modules.count == 12)
        #expect(intent.maxRank == 8)
        #expect(intent.layers[0][LinearSlot.query.rawValue]?.scaling == 2)
        let rslora = try Fixtures.adapter("rand-r4-rslora-dense")
        #expect(rslora.layers[0][LinearSlot.key.rawValue]?.scaling == 4)  // 8 / √4
        #expect(rslora.pooler != nil)
        #expect(intent.byteSize == 12 * 2 * 8 * 384 * 4 + (4 * 384 + 4) * 4)
    }

    @Test("an empty directory names the missing file")
    func emptyDirectory() {
        let directory = Fixtures.temporaryDirectory()
        guard case .missingFile(_, let file)? = Self.loadError(directory) else {
            Issue.record("expected missingFile")
            return
        }
        #expect(file.hasSuffix("adapter_config.json"))
    }

    @Test("config fields that change the math are refused, naming the field", arguments: [
        ("use_qalora", "true"), ("lora_bias", "true"), ("peft_type", "\"BOFT\""), ("bias", "\"all\""),
        ("layer_replication", "[[0, 4]]"), ("trainable_token_indices", "[1, 2]"), ("some_future_option", "3"),
    ])
    func unsupportedFields(field: String, json: String) throws {
        let value = try JSONSerialization.jsonObject(with: Data(json.utf8), options: .fragmentsAllowed)
        let error = Self.loadError(try Self.adapter(configChanges: [field: value]))
        guard case .unsupportedOption(_, let named, _)? = error else {
            Issue.record("expected unsupportedOption for \(field), got \(String(describing: error))")
            return
        }
        #expect(named == field)
        #expect(error!.description.contains(field))
    }

    @Test("ranks and layer indices beyond any real adapter are refused as invalid, not trapped on", arguments: [
        ("r", "5.5e84"), ("r", "1e300"), ("layers_to_transform", "[0, 1e30]"), ("layers_to_transform", "9.3e18"),
        ("rank_pattern", "{\"query\": 1e30}"),
    ])
    func hugeNumbersAreRefused(field: String, json: String) throws {
        // Fuzz/FuzzAdapterConfig found r = 5.5e84 trapping in the Int conversion.
        let value = try JSONSerialization.jsonObject(with: Data(json.utf8), options: .fragmentsAllowed)
        let error = Self.loadError(try Self.adapter(configChanges: [field: value]))
        guard case .invalidConfig(_, let named, _)? = error else {
            Issue.record("expected invalidConfig for \(field) = \(json), got \(String(describing: error))")
            return
        }
        #expect(named == field)
    }

    @Test("fan_in_fan_out is accepted for Linear layers and changes nothing, as in PEFT")
    func fanInFanOut() throws {
        let adapter = try LoRAAdapter(directory: try Self.adapter(configChanges: ["fan_in_fan_out": true]), model: Fixtures.model)
        let reference = try Fixtures.adapter("intent")
        let texts = ["lock the door"]
        #expect(Fixtures.engine.run(texts, adapter: adapter)[0].output == Fixtures.engine.run(texts, adapter: reference)[0].output)
    }

    @Test("a LoRA tensor whose width differs from the base layer is refused with both shapes")
    func wrongInputWidth() throws {
        let directory = try Self.adapter(targets: ["layer.0.attention.self.query"]) { writer in
            Self.pair(&writer, module: "bert.encoder.layer.0.attention.self.query", rank: 8, inputs: 380, outputs: 384)
        }
        let error = Self.loadError(directory)
        guard case .shapeMismatch(_, let tensor, let shape, let expected, _)? = error else {
            Issue.record("expected shapeMismatch, got \(String(describing: error))")
            return
        }
        #expect(tensor.hasSuffix("query.lora_A.weight"))
        #expect(shape == [8, 380])
        #expect(expected == [8, 384])
        #expect(error!.description.contains("takes 384 inputs"))
    }

    @Test("tensors of another rank than the config's are refused")
    func rankMismatch() throws {
        let directory = try Self.adapter(targets: ["layer.0.attention.self.query"], rank: 4) { writer in
            Self.pair(&writer, module: "bert.encoder.layer.0.attention.self.query", rank: 8, inputs: 384, outputs: 384)
        }
        guard case .shapeMismatch(_, _, [8, 384], [4, 384], _)? = Self.loadError(directory) else {
            Issue.record("expected shapeMismatch")
            return
        }
    }

    @Test("a targeted module without tensors, or tensors for an untargeted module, are refused")
    func missingAndUnexpectedTensors() throws {
        let missing = try Self.adapter(targets: ["query"]) { writer in
            Self.pair(&writer, module: "bert.encoder.layer.0.attention.self.query", rank: 8, inputs: 384, outputs: 384)
        }
        guard case .missingTensor(_, let tensor)? = Self.loadError(missing) else {
            Issue.record("expected missingTensor")
            return
        }
        #expect(tensor.contains("layer.1.attention.self.query"))
        let unexpected = try Self.adapter(targets: ["layer.0.attention.self.query"]) { writer in
            Self.pair(&writer, module: "bert.encoder.layer.0.attention.self.query", rank: 8, inputs: 384, outputs: 384)
            Self.pair(&writer, module: "bert.encoder.layer.0.attention.self.key", rank: 8, inputs: 384, outputs: 384)
        }
        guard case .unexpectedTensor(_, let extra)? = Self.loadError(unexpected) else {
            Issue.record("expected unexpectedTensor")
            return
        }
        #expect(extra.contains("attention.self.key"))
    }

    @Test("targets that select a LayerNorm or nothing at all are refused")
    func badTargets() throws {
        guard case .unsupportedTarget(_, let module, "LayerNorm")? = Self.loadError(try Self.adapter(configChanges: ["target_modules": ["LayerNorm"]])) else {
            Issue.record("expected unsupportedTarget")
            return
        }
        #expect(module == "bert.embeddings.LayerNorm")
        guard case .noTargetMatched? = Self.loadError(try Self.adapter(configChanges: ["target_modules": ["q_proj", "v_proj"]])) else {
            Issue.record("expected noTargetMatched")
            return
        }
    }

    @Test("invalid regular expressions and contradictory options are config errors")
    func invalidConfigs() throws {
        guard case .invalidConfig(_, "target_modules", _)? = Self.loadError(try Self.adapter(configChanges: ["target_modules": "(unclosed"])) else {
            Issue.record("expected invalidConfig for a bad regex")
            return
        }
        guard case .invalidConfig(_, "layers_to_transform", _)? = Self.loadError(try Self.adapter(configChanges: ["target_modules": ".*query", "layers_to_transform": [0]])) else {
            Issue.record("expected invalidConfig for layers_to_transform with a regex")
            return
        }
        guard case .invalidConfig(_, "r", _)? = Self.loadError(try Self.adapter(configChanges: ["r": 0])) else {
            Issue.record("expected invalidConfig for r = 0")
            return
        }
        guard case .invalidConfig(_, "(file)", _)? = Self.loadError(try { () throws -> String in
            let directory = try FileManagerCopy.copyAdapter("intent")
            try FileManagerCopy.write("{\"peft_type\": \"LORA\", ", to: directory + "/adapter_config.json")
            return directory
        }()) else {
            Issue.record("expected invalidConfig for truncated JSON")
            return
        }
    }

    @Test("a label list that does not fit the classifier is refused")
    func labelCountMismatch() throws {
        let directory = try FileManagerCopy.copyAdapter("intent")
        try FileManagerCopy.write(#"{"labels": ["on", "off"]}"#, to: directory + "/labels.json")
        guard case .invalidLabels? = Self.loadError(directory) else {
            Issue.record("expected invalidLabels")
            return
        }
    }

    @Test("a truncated or corrupted weights file is refused as a weights error", arguments: [16, 200_000])
    func truncatedWeights(keepBytes: Int) throws {
        let directory = try FileManagerCopy.copyAdapter("intent")
        let path = directory + "/adapter_model.safetensors"
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try data.prefix(keepBytes).write(to: URL(fileURLWithPath: path))
        guard case .weights? = Self.loadError(directory) else {
            Issue.record("expected a weights error")
            return
        }
    }
}
