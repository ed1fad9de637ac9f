import AdapterEngine
import Foundation
import Testing

/// ModernBERT (issue 25): pre-norm blocks, rotary embeddings with a base per attention kind, global attention every
/// other layer and a sliding window on the rest, GeGLU, no biases, one fused `attn.Wqkv`, and its head (dense, GELU,
/// norm) on the mean of the rows or on every token, against PyTorch + transformers + PEFT on the encoder zoo's
/// checkpoint (`Fixtures/encoder-zoo/modernbert.json`; its texts run to 106 tokens, far past the window of 8).
@Suite("ModernBERT")
struct ModernBERTTests {
    static let reference = ZooFamilyReference.load("modernbert")
    static let modelDirectory = EncoderFamilyTests.zoo + "/models/modernbert"
    static let model: BertModel = try! BertModel(directory: modelDirectory)

    static func adapter(_ name: String) throws -> LoRAAdapter {
        try LoRAAdapter(directory: EncoderFamilyTests.zoo + "/adapters/modernbert/" + name, model: model)
    }

    /// Every number of `result` within the reference's tolerance of `expected`'s logits or token logits.
    static func check(_ result: InferenceResult, _ expected: ZooFamilyReference.AdapterCase, _ context: String) throws {
        #expect(result.ids == expected.ids, "\(context): \(expected.text)")
        if let logits = expected.logits {
            let got = try #require(result.output.logits, "\(context): not a classification")
            #expect(Fixtures.maxAbsDiff(got, logits) < reference.tolerance, "\(context): \(expected.text)")
            if let label = expected.label { #expect(result.output.label == label, "\(context): \(expected.text)") }
        }
        if let rows = expected.tokenLogits {
            guard case .tokenClassification(let got, _) = result.output else {
                Issue.record("\(context): not a token classification")
                return
            }
            #expect(got.count == rows.count, "\(context): \(expected.text)")
            for (row, reference) in zip(got, rows) {
                #expect(Fixtures.maxAbsDiff(row, reference) < Self.reference.tolerance, "\(context): \(expected.text)")
            }
        }
    }

    @Test("a ModernBERT checkpoint reads its layout from config.json and gives PyTorch's ids and mean-pooled, normalised embeddings on every kernel path", arguments: KernelPath.supported)
    func embeddings(path: KernelPath) throws {
        let layout = try #require(Self.model.config.modernBERT)
        #expect(Self.model.config.family == .modernbert && Self.model.config.positionOffset == 0)
        #expect(layout.localLayers == [false, true, false, true] && layout.window == 4)
        #expect(layout.globalRopeTheta == 160_000 && layout.localRopeTheta == 10_000 && layout.classifierPooling == .mean)
        #expect(!layout.attentionBias && !layout.mlpBias && !layout.normBias)
        let engine = InferenceEngine(model: Self.model, path: path)
        let results = engine.run(Self.reference.cases.map(\.text), adapter: nil)
        for (expected, result) in zip(Self.reference.cases, results) {
            #expect(result.ids == expected.ids, "\(expected.text)")
            let embedding = try #require(result.output.embedding)
            #expect(Fixtures.maxAbsDiff(embedding, expected.embedding) < Self.reference.tolerance, "\(path): \(expected.text)")
        }
    }

    @Test(
        "LoRA on the fused Wqkv, attn.Wo, mlp.Wi and mlp.Wo with ModernBERT's head (sequence and token classifiers) gives PyTorch+PEFT's logits in one mixed batch on every kernel path",
        arguments: KernelPath.supported)
    func adapters(path: KernelPath) throws {
        let intent = try Self.adapter("intent"), slots = try Self.adapter("slots")
        let expected = try ["intent", "slots"].map { name in try #require(Self.reference.adapters.first { $0.name == name }) }
        #expect(intent.labels == expected[0].labels && slots.labels == expected[1].labels)
        #expect(intent.head?.pooling == .mean && intent.head?.activation == .gelu && intent.head?.norm != nil)
        #expect(slots.head?.perToken == true && slots.head?.pooler != nil)
        let engine = InferenceEngine(model: Self.model, path: path)
        // Both adapters and the base model interleaved in one batch: each adapter's terms stay on its own rows.
        var rows: [(text: String, adapter: LoRAAdapter?)] = []
        for (one, two) in zip(expected[0].cases, expected[1].cases) { rows += [(one.text, intent), (two.text, slots), (one.text, nil)] }
        let results = engine.run(rows)
        for (index, (one, two)) in zip(expected[0].cases, expected[1].cases).enumerated() {
            try Self.check(results[3 * index], one, "intent on \(path)")
            try Self.check(results[3 * index + 1], two, "slots on \(path)")
        }
    }

    @Test(
        "INT8 and BF16 keep PyTorch's intent labels on ModernBERT (the label check on) and its embeddings within cosine 0.995",
        arguments: [Precision.int8, .bf16])
    func int8AndBF16(precision: Precision) throws {
        guard precision != .bf16 || InferenceEngine.runsBF16(path: .detected) else { return }
        let engine = InferenceEngine(model: Self.model, precision: precision)
        let intent = try Self.adapter("intent")
        let expected = try #require(Self.reference.adapters.first { $0.name == "intent" })
        for (reference, result) in zip(expected.cases, engine.run(expected.cases.map(\.text), adapter: intent)) {
            #expect(result.output.label == reference.label, "\(reference.text)")
        }
        for (reference, result) in zip(Self.reference.cases, engine.run(Self.reference.cases.map(\.text), adapter: nil)) {
            let embedding = try #require(result.output.embedding)
            let cosine = zip(embedding, reference.embedding).reduce(Float(0)) { $0 + $1.0 * $1.1 }
            #expect(cosine > 0.995, "\(reference.text): cosine \(cosine)")
        }
    }

    @Test("merged mode folds an adapter into private copies of the fused Wqkv and the MLP and answers as the unmerged adapter")
    func merged() throws {
        for name in ["intent", "slots"] {
            let adapter = try Self.adapter(name)
            let expected = try #require(Self.reference.adapters.first { $0.name == name })
            let merged = MergedModel(base: Self.model, adapter: adapter)
            for (reference, result) in zip(expected.cases, merged.run(expected.cases.map(\.text))) {
                try Self.check(result, reference, "merged \(name)")
            }
        }
    }

    @Test("an adapter merged for uniform batches (prepareMerged) splits the fused Wqkv and answers as PyTorch+PEFT, in FP32 and INT8")
    func mergedForUniformBatches() throws {
        for precision in [Precision.fp32, .int8] {
            let engine = InferenceEngine(model: Self.model, precision: precision, mergeBytes: 256 << 20)
            for name in ["intent", "slots"] {
                let adapter = try Self.adapter(name)
                #expect(engine.prepareMerged(adapter), "\(name) \(precision)")
                let expected = try #require(Self.reference.adapters.first { $0.name == name })
                for (reference, result) in zip(expected.cases, engine.run(expected.cases.map(\.text), adapter: adapter)) {
                    if precision == .fp32 {
                        try Self.check(result, reference, "merged \(name)")
                    } else if case .tokenClassification(_, let labels) = result.output, let rows = reference.tokenLogits {
                        // The label check keeps FP32's label on every token.
                        let fp32 = rows.map { row in expected.labels[row.indices.max { row[$0] < row[$1] }!] }
                        #expect(labels == fp32, "INT8 merged \(name): \(reference.text)")
                    } else {
                        #expect(result.output.label == reference.label, "INT8 merged \(name): \(reference.text)")
                    }
                }
            }
        }
    }

    @Test("a blend of an adapter with itself at weights ½ and ½ keeps its head (GELU, norm, mean pooling or every token) and answers as the adapter")
    func selfBlend() throws {
        for name in ["intent", "slots"] {
            let adapter = try Self.adapter(name)
            let blend = try LoRAAdapter.blend([(adapter, 0.5), (adapter, 0.5)], name: "half-and-half")
            let expected = try #require(Self.reference.adapters.first { $0.name == name })
            let results = InferenceEngine(model: Self.model).run(expected.cases.map(\.text), adapter: blend)
            for (reference, result) in zip(expected.cases, results) { try Self.check(result, reference, "blend of \(name)") }
        }
    }

    @Test("ModernBERT configurations the engine cannot run are refused naming the field; so are adapters on modules it lacks or without their head")
    func refusals() throws {
        for (field, value) in [("hidden_activation", "\"silu\""), ("rope_parameters", #"{"full_attention": {"rope_type": "yarn", "rope_theta": 160000.0}}"#), ("layer_types", #"["full_attention", "chunked_attention", "full_attention", "sliding_attention"]"#)] {
            let directory = Fixtures.temporaryDirectory()
            for file in ["model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"] {
                try FileManager.default.copyItem(atPath: Self.modelDirectory + "/" + file, toPath: directory + "/" + file)
            }
            var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.modelDirectory + "/config.json"))) as! [String: Any]
            config[field] = try JSONSerialization.jsonObject(with: Data(value.utf8), options: .fragmentsAllowed)
            try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: directory + "/config.json"))
            #expect("\(field) must be refused") {
                _ = try BertModel(directory: directory)
            } throws: { error in
                "\(error)".contains(field)
            }
        }
        // BERT's module names match nothing in ModernBERT; a classifier without ModernBERT's head is refused.
        let source = EncoderFamilyTests.zoo + "/adapters/modernbert/intent"
        let directory = Fixtures.temporaryDirectory()
        for file in ["adapter_model.safetensors", "labels.json"] {
            try FileManager.default.copyItem(atPath: source + "/" + file, toPath: directory + "/" + file)
        }
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: source + "/adapter_config.json"))) as! [String: Any]
        config["target_modules"] = ["query", "value"]
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: directory + "/adapter_config.json"))
        #expect("BERT's names on ModernBERT") {
            _ = try LoRAAdapter(directory: directory, model: Self.model)
        } throws: { error in
            guard case AdapterError.noTargetMatched = error else { return false }
            return true
        }
        let file = try SafeTensorsFile(path: source + "/adapter_model.safetensors")
        let headless = Fixtures.temporaryDirectory()
        var writer = SafeTensorsWriter()
        for name in file.tensors.keys.sorted() where !name.contains(".head.") {
            let tensor = try file.tensor(name)
            writer.add(name, shape: tensor.shape, values: tensor.storage.values)
        }
        try writer.data().write(to: URL(fileURLWithPath: headless + "/adapter_model.safetensors"))
        try FileManager.default.copyItem(atPath: source + "/adapter_config.json", toPath: headless + "/adapter_config.json")
        #expect("a classifier without head.dense and head.norm") {
            _ = try LoRAAdapter(directory: headless, model: Self.model)
        } throws: { error in
            "\(error)".contains("head.dense")
        }
    }
}
