import AdapterEngine
import AdapterTraining
import Foundation
import Testing

/// The training pass against what PyTorch+PEFT computes (`scripts/make-training-reference`): the same adapter, the
/// same batch, dropout off.
@Suite("Training parity with PyTorch+PEFT")
struct TrainingParityTests {
    static let root: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let fixture = root + "/Tests/AdapterTrainingTests/Fixtures/training"
    static let modelDirectory = ProcessInfo.processInfo.environment["ADAPTERD_MODEL_DIR"] ?? root + "/models/all-MiniLM-L6-v2"

    struct Expected: Decodable {
        let texts: [String]
        let labels: [Int]
        let labelNames: [String]
        let loss: Float
        let logits: [[Float]]
        let losses: [Float]
    }

    static func load() throws -> (model: BertModel, expected: Expected, adapter: TrainableAdapter, batch: [TrainingExample]) {
        let model = try BertModel(directory: modelDirectory)
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: URL(fileURLWithPath: fixture + "/expected.json")))
        let adapter = try TrainableAdapter(directory: fixture + "/initial", model: model)
        let batch = zip(expected.texts, expected.labels).map { TrainingExample(text: $0, label: expected.labelNames[$1]) }
        return (model, expected, adapter, batch)
    }

    /// Largest |a − b| over all tensors, relative to the largest |b|, per tensor name.
    static func relativeError(_ values: [TrainableAdapter.Parameter], _ reference: SafeTensorsFile, relativeTo scale: Float? = nil) throws -> (worst: Float, name: String) {
        var worst: (Float, String) = (0, "")
        var largest: Float = scale ?? 0
        if scale == nil {
            for parameter in values { largest = max(largest, try reference.tensor(parameter.name).storage.values.map(abs).max() ?? 0) }
        }
        for parameter in values {
            let expected = try reference.tensor(parameter.name).storage.values
            #expect(expected.count == parameter.values.count, "\(parameter.name)")
            let error = zip(parameter.values, expected).map { abs($0 - $1) }.max() ?? 0
            if error / largest > worst.0 { worst = (error / largest, parameter.name) }
        }
        return worst
    }

    @Test("the loss, logits and every LoRA and head gradient match PyTorch+PEFT's within 1e-4 of the largest gradient")
    func gradientsMatch() throws {
        let (model, expected, adapter, batch) = try Self.load()
        let trainer = Trainer(model: model, options: Trainer.Options())
        let result = try trainer.gradients(of: adapter, on: batch)
        #expect(abs(result.loss - expected.loss) < 1e-5, "loss \(result.loss) vs \(expected.loss)")
        for (row, reference) in zip(result.logits, expected.logits) {
            for (value, want) in zip(row, reference) { #expect(abs(value - want) < 1e-4) }
        }
        var gradients = adapter
        for index in gradients.parameters.indices { gradients.parameters[index].values = result.gradients[index] }
        let reference = try SafeTensorsFile(path: Self.fixture + "/gradients.safetensors")
        let (worst, name) = try Self.relativeError(gradients.parameters, reference)
        #expect(worst < 1e-4, "worst relative gradient error \(worst) at \(name)")
    }

    @Test("after 10 AdamW steps with warm-up and weight decay the weights match PyTorch's within 1e-3")
    func tenStepsMatch() throws {
        var (model, expected, adapter, batch) = try Self.load()
        let trainer = Trainer(model: model, options: Trainer.Options())
        var options = AdamW.Options()
        options.warmupSteps = 2
        options.totalSteps = 10
        var optimizer = AdamW(parameters: adapter.parameters, options: options)
        for step in 0..<10 {
            let result = try trainer.gradients(of: adapter, on: batch)
            #expect(abs(result.loss - expected.losses[step]) < 1e-4, "step \(step): loss \(result.loss) vs \(expected.losses[step])")
            optimizer.apply(result.gradients, to: &adapter.parameters)
        }
        let reference = try SafeTensorsFile(path: Self.fixture + "/after10.safetensors")
        let (worst, name) = try Self.relativeError(adapter.parameters, reference, relativeTo: 1)
        #expect(worst < 1e-3, "worst weight error \(worst) at \(name)")
        _ = model
    }

    struct FamilyExpected: Decodable {
        let texts: [String]
        let labels: [Int]
        let labelNames: [String]
        let ids: [[Int32]]
        let loss: Float
        let logits: [[Float]]
    }

    static let zoo = root + "/Tests/AdapterEngineTests/Fixtures/encoder-zoo"

    @Test(
        "on RoBERTa, XLM-RoBERTa, DistilBERT and ModernBERT (their module names, their heads trained whole) the loss, logits and every gradient match PyTorch+PEFT's",
        arguments: ["roberta", "xlm-roberta", "distilbert", "modernbert"])
    func familyGradientsMatch(family: String) throws {
        let model = try BertModel(directory: Self.zoo + "/models/" + family)
        let fixture = Self.root + "/Tests/AdapterTrainingTests/Fixtures/family-training/" + family
        let expected = try JSONDecoder().decode(FamilyExpected.self, from: Data(contentsOf: URL(fileURLWithPath: fixture + "/expected.json")))
        let adapter = try TrainableAdapter(directory: fixture + "/initial", model: model)
        #expect(adapter.family == model.config.family)
        for (text, ids) in zip(expected.texts, expected.ids) { #expect(model.tokenizer.encode(text).ids == ids, "\(text)") }
        let batch = zip(expected.texts, expected.labels).map { TrainingExample(text: $0, label: expected.labelNames[$1]) }
        let result = try Trainer(model: model, options: Trainer.Options()).gradients(of: adapter, on: batch)
        #expect(abs(result.loss - expected.loss) < 1e-5, "loss \(result.loss) vs \(expected.loss)")
        for (row, reference) in zip(result.logits, expected.logits) {
            for (value, want) in zip(row, reference) { #expect(abs(value - want) < 1e-4, "\(family): \(row) vs \(reference)") }
        }
        var gradients = adapter
        for index in gradients.parameters.indices { gradients.parameters[index].values = result.gradients[index] }
        let reference = try SafeTensorsFile(path: fixture + "/gradients.safetensors")
        #expect(Set(reference.tensors.keys) == Set(adapter.parameters.map(\.name)), "\(family): the trainable tensors are PEFT's")
        let (worst, name) = try Self.relativeError(gradients.parameters, reference)
        #expect(worst < 1e-4, "\(family): worst relative gradient error \(worst) at \(name)")
    }

    @Test(
        "an adapter trained on RoBERTa, DistilBERT or ModernBERT is written as PEFT files the engine loads and serves with the trainer's own logits",
        arguments: ["roberta", "distilbert", "modernbert"])
    func familyAdapterServes(family: String) throws {
        let model = try BertModel(directory: Self.zoo + "/models/" + family)
        let labels = ["lights", "alarm", "weather"]
        let texts = ["turn on the kitchen lights", "smoke detected in the garage", "will it rain tomorrow"]
        let examples = texts.enumerated().map { TrainingExample(text: $1, label: labels[$0]) }
        var options = Trainer.Options()
        options.rank = 4
        options.alpha = 8
        options.targets = family == "modernbert" ? [.query, .output] : [.query, .value, .output]
        options.epochs = 3
        options.batchSize = 3
        let trained = try Trainer(model: model, options: options).train(examples, labels: labels).adapter
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("family-\(family)-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try trained.write(to: directory, baseModel: family)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/adapter_config.json"))) as! [String: Any]
        if family == "distilbert" {
            #expect(config["target_modules"] as? [String] == ["q_lin", "v_lin", "lin2"])
            #expect((config["modules_to_save"] as? [String])?.contains("pre_classifier") == true)
        }
        if family == "modernbert" {
            #expect(config["target_modules"] as? [String] == ["Wqkv", "mlp.Wo"])
            #expect((config["modules_to_save"] as? [String])?.contains("head") == true)
        }
        let served = try LoRAAdapter(directory: directory, model: model)
        let outputs = InferenceEngine(model: model).run(texts, adapter: served)
        let logits = try Trainer(model: model, options: options).gradients(of: trained, on: examples).logits
        for (output, expected) in zip(outputs, logits) {
            let got = try #require(output.output.logits)
            #expect(zip(got, expected).allSatisfy { abs($0 - $1) < 1e-4 }, "\(family): \(got) vs \(expected)")
        }
    }
}
