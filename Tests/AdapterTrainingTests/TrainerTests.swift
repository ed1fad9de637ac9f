import AdapterEngine
import AdapterTraining
import Foundation
import Testing

@Suite("Trainer")
struct TrainerTests {
    static let model: BertModel = try! BertModel(directory: TrainingParityTests.modelDirectory)

    static let examples: [TrainingExample] = [
        ("turn on the kitchen lights", "lights"), ("switch off the hallway lamp", "lights"), ("dim the bedroom lights", "lights"),
        ("lights on in the garage please", "lights"), ("smoke detected in the basement", "alarm"), ("the fire alarm is ringing", "alarm"),
        ("intruder alert at the back door", "alarm"), ("glass break sensor triggered", "alarm"), ("will it rain tomorrow", "weather"),
        ("forecast says snow tonight", "weather"), ("how hot will it be this afternoon", "weather"), ("strong winds expected", "weather"),
    ].map { TrainingExample(text: $0.0, label: $0.1) }

    static func options(epochs: Int = 8) -> Trainer.Options {
        var options = Trainer.Options()
        options.epochs = epochs
        options.batchSize = 4
        options.rank = 4
        options.alpha = 8
        options.optimizer.learningRate = 3e-3
        return options
    }

    @Test("training lowers the loss and learns a small three-label set; the same seed gives the same adapter")
    func learnsAndIsReproducible() throws {
        let trainer = Trainer(model: Self.model, options: Self.options())
        var losses: [Float] = []
        let (adapter, report) = try trainer.train(Self.examples, eval: Self.examples, progress: { losses.append($0.loss) })
        #expect(report.steps == 8 * 3)
        #expect(losses.count == report.steps)
        #expect(report.finalLoss < losses.first! * 0.8, "loss went from \(losses.first!) to \(report.finalLoss)")
        #expect((report.evalAccuracy ?? 0) >= 0.9, "accuracy on the training texts \(report.evalAccuracy ?? 0)")
        #expect(report.peakBytes > adapter.byteSize * 4 && report.peakBytes <= report.estimatedBytes, "measured \(report.peakBytes) B, estimated \(report.estimatedBytes) B")
        let (again, _) = try trainer.train(Self.examples)
        #expect(again.parameters.map(\.values) == adapter.parameters.map(\.values), "same seed, same data: same weights")
    }

    @Test("a training whose loss stops being a finite number ends with 'diverged' at that step instead of staging NaN weights")
    func divergingTrainingStops() throws {
        let trainer = Trainer(model: Self.model, options: Self.options(epochs: 2))
        var (adapter, _) = try trainer.train(Self.examples)
        let classifier = try #require(adapter.parameters.firstIndex { $0.name.contains("classifier") && $0.decays })
        adapter.parameters[classifier].values[0] = .nan
        var steps = 0
        let error = #expect(throws: TrainingError.self) {
            try trainer.train(&adapter, on: Self.examples, progress: { _ in steps += 1 })
        }
        guard case .diverged(let step, let loss)? = error else {
            Issue.record("expected diverged, got \(error.map { "\($0)" } ?? "no error")")
            return
        }
        #expect(step == 1 && loss.isNaN, "\(step) \(loss)")
        #expect(steps == 0, "no progress was reported past the diverged step")
    }

    @Test("the written directory is a PEFT adapter adapterd's engine loads, and its logits are the training pass's")
    func writtenAdapterServes() throws {
        let trainer = Trainer(model: Self.model, options: Self.options(epochs: 2))
        let (adapter, _) = try trainer.train(Self.examples)
        let directory = NSTemporaryDirectory() + "adapterd-trained-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try adapter.write(to: directory, baseModel: "sentence-transformers/all-MiniLM-L6-v2")
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/adapter_config.json"))) as! [String: Any]
        #expect(config["peft_type"] as? String == "LORA" && config["task_type"] as? String == "SEQ_CLS")
        #expect(config["target_modules"] as? [String] == ["query", "value"])
        let loaded = try LoRAAdapter(directory: directory, model: Self.model, name: "trained")
        #expect(loaded.labels == ["lights", "alarm", "weather"])
        let engine = InferenceEngine(model: Self.model)
        let texts = ["turn the porch light on", "is there snow coming"]
        let served = engine.run(texts, adapter: loaded)
        let trained = try trainer.gradients(of: adapter, on: texts.map { TrainingExample(text: $0, label: "lights") })
        for (result, logits) in zip(served, trained.logits) {
            guard case .classification(let values, _, _) = result.output else {
                Issue.record("the engine returned no classification")
                continue
            }
            for (value, want) in zip(values, logits) { #expect(abs(value - want) < 1e-4) }
        }
        // Read back for further training: the same tensors.
        let reread = try TrainableAdapter(directory: directory, model: Self.model)
        #expect(reread.parameters.map(\.values) == adapter.parameters.map(\.values))
    }

    @Test("bad examples, unknown labels and a memory budget too small are refused with the reason")
    func refusals() throws {
        #expect(throws: TrainingError.invalidExamples(path: "inline", line: 2, reason: "the label is empty")) {
            try TrainingExample.parse(jsonl: Data((#"{"text": "a", "label": "x"}"# + "\n" + #"{"text": "b", "label": ""}"#).utf8), source: "inline")
        }
        var options = Self.options()
        options.memoryBudgetBytes = 1 << 20
        do {
            _ = try Trainer(model: Self.model, options: options).train(Self.examples)
            Issue.record("a 1 MiB budget was accepted")
        } catch {
            guard case .tooLarge = error else { Issue.record("\(error)"); return }
        }
        let trainer = Trainer(model: Self.model, options: Self.options(epochs: 1))
        #expect(throws: TrainingError.unknownLabel(label: "other", labels: ["lights", "alarm", "weather"])) {
            _ = try trainer.train(Self.examples, eval: [TrainingExample(text: "x", label: "other")], labels: ["lights", "alarm", "weather"])
        }
    }
}
