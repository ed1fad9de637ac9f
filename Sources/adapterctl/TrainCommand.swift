import AdapterEngine
import AdapterTraining
import ArgumentParser
import Foundation

/// `adapterctl train`: trains a LoRA adapter and its classifier on this machine and writes it as PEFT does.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a PEFT LoRA adapter (with its classifier head) from labelled examples, on this machine.",
        discussion: """
            Examples are JSON Lines: {"text": "…", "label": "…"} per line. The output directory holds adapter_config.json, \
            adapter_model.safetensors (PEFT's tensor names) and labels.json: load it with LoadAdapter, a push, \
            adapterctl run --adapter, or PEFT's PeftModel.from_pretrained.
            """)

    @Option(name: .long, help: "Hugging Face model directory of the base model.")
    var model: String

    @Option(name: .long, help: "Training examples, JSON Lines of {\"text\", \"label\"}.")
    var examples: String

    @Option(name: .long, help: "Directory to write the adapter to.")
    var out: String

    @Option(name: .long, help: "Held-out examples: their accuracy is printed at the end.")
    var eval: String?

    @Option(name: .long, help: "Train further from this PEFT adapter (its rank, alpha, targets and labels) instead of a new one.")
    var from: String?

    @Option(name: .long, help: "LoRA rank.")
    var rank = 8

    @Option(name: .long, help: "LoRA alpha (scaling = alpha / rank).")
    var alpha: Double = 16

    @Option(name: .long, help: "Adapted modules, comma-separated: query, key, value, attention.output.dense, intermediate.dense, output.dense (DistilBERT's q_lin … lin2 and ModernBERT's Wqkv, attn.Wo, Wi, mlp.Wo name the same layers; on ModernBERT any of query, key, value adapts Wqkv).")
    var targets = "query,value"

    @Option(name: .long, help: "Passes over the examples.")
    var epochs = 10

    @Option(name: .long, help: "Peak learning rate of AdamW.")
    var lr: Float = 1e-3

    @Option(name: .long, help: "Examples per step.")
    var batch = 16

    @Option(name: .long, help: "AdamW weight decay.")
    var weightDecay: Float = 0.01

    @Option(name: .long, help: "Fraction of the steps spent warming the learning rate up.")
    var warmup: Double = 0.1

    @Option(name: .long, help: "Seed of the initial weights and the batch order.")
    var seed: UInt64 = 0

    @Flag(name: .long, help: "Print one JSON object with the figures at the end instead of text, and no progress.")
    var json = false

    func validate() throws {
        guard rank >= 1, epochs >= 1, batch >= 1, lr > 0 else { throw ValidationError("--rank, --epochs, --batch and --lr must be positive") }
        guard Self.slots(targets) != nil else {
            throw ValidationError("--targets: each of \(targets) must be one of \(LinearSlot.allCases.map(\.path).joined(separator: ", ")) (or query, key, value; DistilBERT's or ModernBERT's names)")
        }
    }

    /// The slots named in `list`.
    static func slots(_ list: String) -> [LinearSlot]? {
        var slots: [LinearSlot] = []
        for name in list.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !name.isEmpty {
            guard let slot = LinearSlot(moduleName: name) else { return nil }
            slots.append(slot)
        }
        return slots.isEmpty ? nil : slots
    }

    func run() throws {
        do {
            let base = try BertModel(directory: model)
            let training = try TrainingExample.read(jsonl: examples)
            let held = try eval.map { path throws(TrainingError) in try TrainingExample.read(jsonl: path) } ?? []
            var options = Trainer.Options()
            options.rank = rank
            options.alpha = alpha
            options.targets = Self.slots(targets)!
            options.epochs = epochs
            options.batchSize = batch
            options.warmupRatio = warmup
            options.seed = seed
            options.optimizer.learningRate = lr
            options.optimizer.weightDecay = weightDecay
            // With --json the output is one line for a script: no progress.
            let progress = json ? nil : TrainingProgress(interactive: isatty(STDERR_FILENO) == 1)
            let trainer = Trainer(model: base, options: options)
            let adapter: TrainableAdapter
            let report: Trainer.Report
            if let from {
                var start = try TrainableAdapter(directory: from, model: base)
                report = try trainer.train(&start, on: training, eval: held, progress: { progress?.update($0) })
                adapter = start
            } else {
                (adapter, report) = try trainer.train(training, eval: held, progress: { progress?.update($0) })
            }
            progress?.finish()
            // As PEFT records a base loaded from a directory: its path.
            try adapter.write(to: out, baseModel: model)
            let accuracy = report.evalAccuracy.map { String(format: "%.3f", $0) } ?? "null"
            if json {
                print(#"{"out":\#(RunCommand.jsonString(out)),"labels":\#(adapter.labels.count),"examples":\#(report.examples),"epochs":\#(report.epochs),"steps":\#(report.steps),"finalLoss":\#(report.finalLoss),"evalAccuracy":\#(accuracy),"secondsPerEpoch":\#(String(format: "%.3f", report.secondsPerEpoch)),"peakBytes":\#(report.peakBytes)}"#)
            } else {
                print("wrote \(out): \(adapter.labels.count) labels, r \(adapter.rank), alpha \(adapter.alpha), \(adapter.targets.map(adapter.family.modulePath).joined(separator: ", "))")
                print(String(format: "%d examples, %d epochs, %d steps, final loss %.4f, %.2f s per epoch, about %d MiB", report.examples, report.epochs, report.steps, report.finalLoss, report.secondsPerEpoch, report.peakBytes >> 20))
                if let value = report.evalAccuracy { print(String(format: "eval accuracy %.3f on %d examples", value, held.count)) }
            }
        } catch let error as CustomStringConvertible & Error {
            FileHandle.standardError.write(Data("adapterctl: \(error.description)\n".utf8))
            throw ExitCode(2)
        }
    }
}

/// Steps and loss on standard error: a bar redrawn in place on a terminal, a line per epoch otherwise.
final class TrainingProgress {
    private let interactive: Bool
    private var lastEpoch = -1
    private var losses: [Float] = []

    init(interactive: Bool) { self.interactive = interactive }

    func update(_ progress: Trainer.Progress) {
        losses.append(progress.loss)
        let recent = losses.suffix(8)
        let loss = recent.reduce(0, +) / Float(recent.count)
        let fraction = Double(progress.step) / Double(max(progress.totalSteps, 1))
        let filled = Int(fraction * 30)
        let line = String(format: "epoch %d [%@%@] step %d/%d loss %.4f", progress.epoch + 1, String(repeating: "#", count: filled), String(repeating: ".", count: 30 - filled), progress.step, progress.totalSteps, loss)
        if interactive {
            FileHandle.standardError.write(Data(("\r" + line).utf8))
        } else if progress.epoch != lastEpoch {
            lastEpoch = progress.epoch
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }

    func finish() {
        if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
