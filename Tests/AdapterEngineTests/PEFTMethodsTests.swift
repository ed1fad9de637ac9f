import AdapterEngine
import Foundation
import Testing

/// PEFT methods beyond plain LoRA on the real all-MiniLM-L6-v2, against what PyTorch + PEFT computed for the shared
/// encoder zoo's adapters (`Fixtures/encoder-zoo/minilm-methods.json`).
@Suite("PEFT methods beyond LoRA")
struct PEFTMethodsTests {
    static let directory = Fixtures.root + "/Tests/AdapterEngineTests/Fixtures/encoder-zoo"

    struct Reference: Decodable {
        struct Case: Decodable {
            let text: String
            let logits: [Float]
            let label: String
        }

        struct Adapter: Decodable {
            let labels: [String]
            let cases: [Case]
        }

        let tolerance: Float
        let adapters: [String: Adapter]

        static let shared: Reference = {
            let url = URL(fileURLWithPath: directory + "/minilm-methods.json")
            return try! JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))
        }()
    }

    static func adapter(_ name: String) throws -> LoRAAdapter {
        try LoRAAdapter(directory: directory + "/adapters/all-MiniLM-L6-v2/" + name, model: Fixtures.model)
    }

    /// Every case of `name` run through `engine`, each logit within the reference's tolerance and each label equal.
    static func expectMatches(_ name: String, engine: InferenceEngine, adapter: LoRAAdapter, tolerance: Float? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let reference = try #require(Reference.shared.adapters[name])
        #expect(adapter.labels == reference.labels, sourceLocation: sourceLocation)
        let results = engine.run(reference.cases.map(\.text), adapter: adapter)
        for (expected, result) in zip(reference.cases, results) {
            let logits = try #require(result.output.logits, sourceLocation: sourceLocation)
            if let tolerance = tolerance ?? Optional(Reference.shared.tolerance) {
                #expect(Fixtures.maxAbsDiff(logits, expected.logits) < tolerance, "\(name): \(expected.text)", sourceLocation: sourceLocation)
            }
            #expect(result.output.label == expected.label, "\(name): \(expected.text)", sourceLocation: sourceLocation)
        }
    }

    @Test("DoRA (use_dora) gives PyTorch+PEFT's logits and labels on every kernel path", arguments: KernelPath.supported)
    func doraMatchesPEFT(path: KernelPath) throws {
        let adapter = try Self.adapter("dora-intent")
        #expect(adapter.config.useDoRA)
        #expect(adapter.modules.allSatisfy { $0.weights.magnitudeScale != nil })
        try Self.expectMatches("dora-intent", engine: InferenceEngine(model: Fixtures.model, path: path), adapter: adapter)
    }

    @Test("DoRA rows in a batch mixed with plain LoRA and base rows each get their own adapter's result")
    func doraInMixedBatch() throws {
        let dora = try Self.adapter("dora-intent")
        let lora = try Fixtures.adapter("intent")
        let engine = InferenceEngine(model: Fixtures.model)
        let cases = try #require(Reference.shared.adapters["dora-intent"]).cases
        let alone = engine.run(cases.map(\.text), adapter: lora)
        let mixed = engine.run(cases.flatMap { [($0.text, dora), ($0.text, lora), ($0.text, nil)] })
        for (index, expected) in cases.enumerated() {
            #expect(Fixtures.maxAbsDiff(try #require(mixed[3 * index].output.logits), expected.logits) < 1e-4, "DoRA row: \(expected.text)")
            #expect(Fixtures.maxAbsDiff(try #require(mixed[3 * index + 1].output.logits), try #require(alone[index].output.logits)) < 1e-5, "LoRA row: \(expected.text)")
            #expect(mixed[3 * index + 2].output.embedding != nil)
        }
    }

    @Test("DoRA in INT8 and BF16 keeps PEFT's labels, and merged into the weights matches unmerged")
    func doraInt8AndMerged() throws {
        let adapter = try Self.adapter("dora-intent")
        try Self.expectMatches("dora-intent", engine: InferenceEngine(model: Fixtures.model, precision: .int8), adapter: adapter, tolerance: .infinity)
        if InferenceEngine.runsBF16(path: .detected) {
            let bf16 = InferenceEngine(model: Fixtures.model, precision: .bf16, labelCheckFactor: 0)
            try Self.expectMatches("dora-intent", engine: bf16, adapter: adapter, tolerance: 0.1)
        }
        let merged = MergedModel(base: Fixtures.model, adapter: adapter)
        try Self.expectMatches("dora-intent", engine: merged.engine, adapter: merged.adapter)
    }

    @Test("IA³ (input scaling on feedforward_modules, output scaling elsewhere) gives PyTorch+PEFT's logits on every kernel path", arguments: KernelPath.supported)
    func ia3MatchesPEFT(path: KernelPath) throws {
        let adapter = try Self.adapter("ia3-severity")
        #expect(adapter.config.method == .ia3)
        // PEFT matches feedforward_modules ["output.dense"] as a suffix: attention.output.dense is input-scaled too.
        let layer = adapter.scalings[0]
        #expect(layer[LinearSlot.attentionOutput.rawValue]?.scalesInput == true)
        #expect(layer[LinearSlot.output.rawValue]?.scalesInput == true)
        #expect(layer[LinearSlot.key.rawValue]?.scalesInput == false && layer[LinearSlot.value.rawValue]?.scalesInput == false)
        #expect(layer[LinearSlot.query.rawValue] == nil && adapter.modules.isEmpty)
        try Self.expectMatches("ia3-severity", engine: InferenceEngine(model: Fixtures.model, path: path), adapter: adapter)
    }

    @Test("IA³, DoRA, LoRA and base rows in one batch each get their own adapter's result; IA³ in INT8 and BF16 keeps the labels; merged IA³ matches")
    func ia3MixedInt8AndMerged() throws {
        let ia3 = try Self.adapter("ia3-severity")
        let dora = try Self.adapter("dora-intent")
        let lora = try Fixtures.adapter("intent")
        let engine = InferenceEngine(model: Fixtures.model)
        let ia3Cases = try #require(Reference.shared.adapters["ia3-severity"]).cases
        let doraCases = try #require(Reference.shared.adapters["dora-intent"]).cases
        let loraAlone = engine.run(ia3Cases.map(\.text), adapter: lora)
        let mixed = engine.run(zip(ia3Cases, doraCases).flatMap { [($0.text, ia3), ($1.text, dora), ($0.text, lora), ($0.text, nil)] })
        for (index, (ia3Case, doraCase)) in zip(ia3Cases, doraCases).enumerated() {
            #expect(Fixtures.maxAbsDiff(try #require(mixed[4 * index].output.logits), ia3Case.logits) < 1e-4, "IA³ row: \(ia3Case.text)")
            #expect(Fixtures.maxAbsDiff(try #require(mixed[4 * index + 1].output.logits), doraCase.logits) < 1e-4, "DoRA row: \(doraCase.text)")
            #expect(Fixtures.maxAbsDiff(try #require(mixed[4 * index + 2].output.logits), try #require(loraAlone[index].output.logits)) < 1e-5, "LoRA row")
            #expect(mixed[4 * index + 3].output.embedding != nil)
        }
        try Self.expectMatches("ia3-severity", engine: InferenceEngine(model: Fixtures.model, precision: .int8), adapter: ia3, tolerance: .infinity)
        if InferenceEngine.runsBF16(path: .detected) {
            // Without the label check: it would answer every row in FP32 if the BF16 pass were wrong (its calibrated
            // error would be huge), and so hide the fault.
            let bf16 = InferenceEngine(model: Fixtures.model, precision: .bf16, labelCheckFactor: 0)
            try Self.expectMatches("ia3-severity", engine: bf16, adapter: ia3, tolerance: 0.1)
        }
        let merged = MergedModel(base: Fixtures.model, adapter: ia3)
        try Self.expectMatches("ia3-severity", engine: merged.engine, adapter: merged.adapter)
    }

    @Test(
        "AdaLoRA (pruned ranks, ranknum = init_r), LoHa and LoKr (full and factored Kronecker factors, rank and alpha patterns) give PyTorch+PEFT's logits on every kernel path",
        arguments: ["adalora-room", "loha-mood", "lokr-device"], KernelPath.supported)
    func factoredMethodsMatchPEFT(name: String, path: KernelPath) throws {
        let adapter = try Self.adapter(name)
        try Self.expectMatches(name, engine: InferenceEngine(model: Fixtures.model, path: path), adapter: adapter)
    }

    @Test("every method side by side in one batch, each row its own adapter's result; INT8 keeps the labels; merged matches", arguments: [RunMode.mixed, .int8, .merged])
    func everyMethodTogether(mode: RunMode) throws {
        let names = ["dora-intent", "ia3-severity", "adalora-room", "loha-mood", "lokr-device"]
        let adapters = try names.map(Self.adapter)
        switch mode {
        case .mixed:
            var requests: [(text: String, adapter: LoRAAdapter?)] = []
            var expected: [[Float]] = []
            for (name, adapter) in zip(names, adapters) {
                for item in try #require(Reference.shared.adapters[name]).cases {
                    requests.append((item.text, adapter))
                    expected.append(item.logits)
                }
            }
            // Interleaved, so each adapter's rows sit among the others'.
            let order = requests.indices.sorted { ($0 % 7, $0) < ($1 % 7, $1) }
            let results = InferenceEngine(model: Fixtures.model).run(order.map { requests[$0] })
            for (position, index) in order.enumerated() {
                let logits = try #require(results[position].output.logits)
                #expect(Fixtures.maxAbsDiff(logits, expected[index]) < Reference.shared.tolerance, "\(requests[index].adapter!.name): \(requests[index].text)")
            }
        case .int8:
            let engine = InferenceEngine(model: Fixtures.model, precision: .int8)
            for (name, adapter) in zip(names, adapters) { try Self.expectMatches(name, engine: engine, adapter: adapter, tolerance: .infinity) }
        case .merged:
            for (name, adapter) in zip(names, adapters) {
                let merged = MergedModel(base: Fixtures.model, adapter: adapter)
                try Self.expectMatches(name, engine: merged.engine, adapter: merged.adapter)
            }
        }
    }

    enum RunMode: Sendable, CustomTestStringConvertible {
        case mixed, int8, merged
        var testDescription: String { "\(self)" }
    }

    @Test("another method's tensors in an adapter declared LoRA are refused by name, not ignored")
    func mismatchedFactorsRefused() throws {
        let directory = Fixtures.temporaryDirectory()
        let source = Self.directory + "/adapters/all-MiniLM-L6-v2/lokr-device"
        for file in ["adapter_model.safetensors", "labels.json"] {
            try FileManager.default.copyItem(atPath: source + "/" + file, toPath: directory + "/" + file)
        }
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: source + "/adapter_config.json"))) as! [String: Any]
        config["peft_type"] = "LORA"
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: directory + "/adapter_config.json"))
        #expect {
            try LoRAAdapter(directory: directory, model: Fixtures.model)
        } throws: { error in
            guard case AdapterError.unexpectedTensor(_, let tensor) = error else { return false }
            return tensor.contains("lokr_w")
        }
    }

    @Test("use_dora without magnitude vectors is refused, naming the missing tensor")
    func doraWithoutMagnitudeRefused() throws {
        let directory = Fixtures.temporaryDirectory()
        let source = Fixtures.adapterDirectory("intent")
        for file in ["adapter_model.safetensors", "labels.json"] {
            try FileManager.default.copyItem(atPath: source + "/" + file, toPath: directory + "/" + file)
        }
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: source + "/adapter_config.json"))) as! [String: Any]
        config["use_dora"] = true
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: directory + "/adapter_config.json"))
        #expect {
            try LoRAAdapter(directory: directory, model: Fixtures.model)
        } throws: { error in
            guard case AdapterError.missingTensor(_, let tensor) = error else { return false }
            return tensor.hasSuffix("lora_magnitude_vector")
        }
    }
}
