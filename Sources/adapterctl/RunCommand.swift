import AdapterEngine
import ArgumentParser
import Foundation

/// `adapterctl run`: runs the engine locally, without a broker.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Classify or embed texts locally with the base model and an optional PEFT adapter (LoRA, DoRA, IA³, AdaLoRA, LoHa, LoKr) or a weighted blend of adapters.")

    @Option(name: .long, help: "Hugging Face model directory (config.json, model.safetensors, tokenizer.json).")
    var model: String

    @Option(name: .long, help: "PEFT adapter directory (adapter_config.json, adapter_model.safetensors, optional labels.json).")
    var adapter: String?

    @Option(name: .long, help: ArgumentHelp("A weighted part of a blend, NAME=DIR:WEIGHT (repeat it): the adapters' updates and heads summed with these weights.", valueName: "NAME=DIR:WEIGHT"))
    var blend: [String] = []

    @Flag(name: .long, help: "Merge the adapter into a private copy of the weights instead of running it unmerged.")
    var merged = false

    @Flag(name: .long, help: "Print one JSON object per text.")
    var json = false

    @Option(name: .long, help: "Precision of the base model's linear layers: fp32 (exact, default), int8, or bf16 (CPUs with AVX-512 BF16 or AMX).")
    var precision: String = "fp32"

    @Option(name: .customLong("cpu-path"), help: "Run a lower kernel path than the CPU's best: portable, avx2, avx2-vnni, avx512, avx512-vnni, avx512-bf16 or amx.")
    var cpuPath: String?

    @Flag(name: .long, help: "Print the precision, kernel path and GEMM runtime to stderr.")
    var verbose = false

    @Option(name: .long, help: ArgumentHelp("Read the inputs from a JSON-lines file, one {\"text\": …, \"text_pair\": …} per line (text_pair optional: a cross-encoder's pair).", valueName: "FILE.jsonl"))
    var input: String?

    @Argument(help: "Texts to run.")
    var texts: [String] = []

    func validate() throws {
        guard !texts.isEmpty || input != nil else { throw ValidationError("give at least one TEXT, or --input FILE.jsonl") }
        guard texts.isEmpty || input == nil else { throw ValidationError("give TEXTs or --input, not both") }
        guard adapter != nil || !blend.isEmpty || !merged else { throw ValidationError("--merged needs --adapter or --blend") }
        guard adapter == nil || blend.isEmpty else { throw ValidationError("give --adapter or --blend, not both") }
        for part in blend where Self.blendPart(part) == nil {
            throw ValidationError("--blend takes NAME=DIR:WEIGHT with a finite WEIGHT, not '\(part)'")
        }
        guard let chosen = Precision(rawValue: precision) else { throw ValidationError("--precision must be fp32, int8 or bf16, not '\(precision)'") }
        if let cpuPath, KernelPath(name: cpuPath) == nil {
            throw ValidationError("--cpu-path must be one of \(KernelPath.allCases.map(\.description).joined(separator: ", ")), not '\(cpuPath)'")
        }
        let runPath = min(cpuPath.flatMap(KernelPath.init(name:)) ?? .detected, .detected)
        guard chosen != .bf16 || runPath.hasBF16 else {
            throw ValidationError("--precision bf16 needs BF16 dot products (kernel path avx512-bf16 or amx); this run's path is \(runPath)")
        }
    }

    /// The inputs of a JSON-lines file: each line's `text` and optional `text_pair` (blank lines skipped).
    static func readInputs(_ path: String) throws -> [(text: String, pair: String?)] {
        struct Line: Decodable {
            let text: String
            let text_pair: String?
        }
        guard let data = FileManager.default.contents(atPath: path), let content = String(data: data, encoding: .utf8) else {
            throw ValidationError("cannot read \(path) as UTF-8 text")
        }
        var rows: [(text: String, pair: String?)] = []
        for (number, line) in content.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            do {
                let decoded = try JSONDecoder().decode(Line.self, from: Data(line.utf8))
                rows.append((decoded.text, decoded.text_pair))
            } catch {
                throw ValidationError("\(path) line \(number + 1): not {\"text\": …, \"text_pair\": …} (\(error))")
            }
        }
        guard !rows.isEmpty else { throw ValidationError("\(path) holds no input") }
        return rows
    }

    /// `NAME=DIR:WEIGHT`, split; nil when it is not one.
    static func blendPart(_ text: String) -> (name: String, directory: String, weight: Float)? {
        guard let equals = text.firstIndex(of: "="), let colon = text.lastIndex(of: ":"), equals < colon else { return nil }
        let name = String(text[..<equals]), directory = String(text[text.index(after: equals)..<colon])
        guard !name.isEmpty, !directory.isEmpty, let weight = Float(text[text.index(after: colon)...]), weight.isFinite else { return nil }
        return (name, directory, weight)
    }

    func run() throws {
        do {
            let path = cpuPath.flatMap(KernelPath.init(name:))
            let runtime = ExecutionRuntime.configure(path: path)
            let engine = try InferenceEngine(modelDirectory: model, precision: Precision(rawValue: precision)!, path: path ?? .detected)
            if verbose {
                let features = KernelPath.cpuFeatures.joined(separator: " ")
                FileHandle.standardError.write(Data("adapterctl: precision \(engine.precision), kernels \(engine.path), \(runtime); CPU: \(features)\n".utf8))
            }
            var lora: LoRAAdapter?
            if let adapter { lora = try LoRAAdapter(directory: adapter, model: engine.model) }
            if !blend.isEmpty {
                let parts = try blend.map { text throws -> (adapter: LoRAAdapter, weight: Float) in
                    let part = Self.blendPart(text)!
                    return (try LoRAAdapter(directory: part.directory, model: engine.model, name: part.name), part.weight)
                }
                lora = try LoRAAdapter.blend(parts, name: parts.map { "\($0.adapter.name)×\($0.weight)" }.joined(separator: "+"))
            }
            let inputs = try input.map(Self.readInputs) ?? texts.map { (text: $0, pair: String?.none) }
            let results: [InferenceResult]
            var ran = engine
            if merged, let lora {
                let model = MergedModel(base: engine.model, adapter: lora, precision: engine.precision, path: engine.path)
                ran = model.engine
                results = try model.engine.run(pairs: inputs.map { ($0.text, $0.pair, model.adapter) })
            } else {
                results = try engine.run(pairs: inputs.map { ($0.text, $0.pair, lora) })
            }
            if verbose, ran.precision != .fp32 {
                FileHandle.standardError.write(Data((Self.labelCheckLine(results, engine: ran, adapter: lora) + "\n").utf8))
            }
            for (row, result) in zip(inputs, results) {
                let text = row.pair.map { row.text + " | " + $0 } ?? row.text
                var entities: [Entity]?
                if case .tokenClassification(let logits, _) = result.output, row.pair == nil, let labels = lora?.head?.labels {
                    entities = engine.model.tokenizer.entities(text: row.text, ids: result.ids, logits: logits, labels: labels)
                }
                print(json
                    ? Self.jsonLine(text: row.text, pair: row.pair, result: result, head: lora?.head, entities: entities)
                    : Self.humanLine(text: text, result: result, head: lora?.head, entities: entities))
            }
        } catch let error as CustomStringConvertible & Error {
            FileHandle.standardError.write(Data("adapterctl: \(error.description)\n".utf8))
            throw ExitCode(2)
        }
    }

    /// One JSON object per text: `embedding`; or, by the head's `problem_type`, `label` and `logits`
    /// (single-label), `labels` (those with a logit above 0) and `logits` (multi-label), or `value` (regression).
    /// A token classifier's line adds `entities` (grouped as transformers' "simple" aggregation) when given.
    static func jsonLine(text: String, pair: String? = nil, result: InferenceResult, head: ClassifierHead? = nil, entities: [Entity]? = nil) -> String {
        var fields = ["\"text\":" + jsonString(text)] + (pair.map { ["\"text_pair\":" + jsonString($0)] } ?? []) + [
            "\"ids\":[" + result.ids.map(String.init).joined(separator: ",") + "]", "\"tokens\":\(result.tokens)",
        ]
        switch result.output {
        case .classification(let logits, _, let label):
            switch head?.problemType ?? .singleLabel {
            case .singleLabel: fields.append("\"label\":" + jsonString(label))
            case .multiLabel: fields.append("\"labels\":[" + (head?.labelsOn(logits) ?? []).map(jsonString).joined(separator: ",") + "]")
            case .regression:
                fields.append("\"value\":\(logits[0])")
                return "{" + fields.joined(separator: ",") + "}"
            }
            fields.append("\"logits\":[" + logits.map { "\($0)" }.joined(separator: ",") + "]")
        case .tokenClassification(let logits, let labels):
            fields.append("\"tokenLabels\":[" + labels.map(jsonString).joined(separator: ",") + "]")
            fields.append("\"tokenLogits\":[" + logits.map { "[" + $0.map { "\($0)" }.joined(separator: ",") + "]" }.joined(separator: ",") + "]")
            if let entities {
                fields.append("\"entities\":[" + entities.map { entity in
                    "{\"label\":\(jsonString(entity.label)),\"score\":\(entity.score),\"word\":\(jsonString(entity.word)),\"start\":\(entity.start),\"end\":\(entity.end)}"
                }.joined(separator: ",") + "]")
            }
        case .embedding(let values):
            fields.append("\"embedding\":[" + values.map { "\($0)" }.joined(separator: ",") + "]")
        }
        return "{" + fields.joined(separator: ",") + "}"
    }

    /// `--verbose`'s account of the label check: how many rows a more exact pass answered, in which precision, and
    /// the margins.
    static func labelCheckLine(_ results: [InferenceResult], engine: InferenceEngine, adapter: LoRAAdapter?) -> String {
        let answered = results.compactMap { $0.labelCheck.answeredIn }
        let routed = results.count { if case .routed = $0.labelCheck { true } else { false } }
        let byPrecision = [Precision.bf16, .fp32].compactMap { precision in
            let count = answered.count(where: { $0 == precision })
            return count > 0 ? "\(count) in \(precision.rawValue.uppercased())" : nil
        }
        let margins = adapter.flatMap { engine.labelCheckFigures(for: $0)?.passes }?.map {
            "\($0.precision.rawValue.uppercased()) \(String(format: "%.3g", $0.calibratedError))"
        } ?? []
        return "adapterctl: \(answered.count) of \(results.count) rows answered by a more exact pass"
            + (byPrecision.isEmpty ? "" : " (\(byPrecision.joined(separator: ", ")); \(routed) sent there directly)")
            + "; a row is re-checked within \(engine.labelCheckFactor)× the adapter's calibrated error of a decision ("
            + (margins.isEmpty ? "none" : margins.joined(separator: ", ")) + ")"
    }

    static func humanLine(text: String, result: InferenceResult, head: ClassifierHead? = nil, entities: [Entity]? = nil) -> String {
        switch result.output {
        case .classification(let logits, _, _) where head?.problemType == .regression:
            return "value \(String(format: "%.4f", logits[0]))\t\(result.tokens) tokens\t\(text)"
        case .classification(let logits, _, _) where head?.problemType == .multiLabel:
            let on = head?.labelsOn(logits) ?? []
            return "\(on.isEmpty ? "(none)" : on.joined(separator: ","))\t\(result.tokens) tokens\t\(text)"
        case .classification(let logits, let index, let label):
            let scores = logits.map { String(format: "%.3f", $0) }.joined(separator: " ")
            return "\(label)\t(logit \(String(format: "%.3f", logits[index])); \(scores))\t\(result.tokens) tokens\t\(text)"
        case .tokenClassification(_, let labels):
            if let entities {
                let found = entities.map { "\($0.label) \"\($0.word)\" [\($0.start), \($0.end)) \(String(format: "%.2f", $0.score))" }
                return "\(found.isEmpty ? "(no entities)" : found.joined(separator: "; "))\t\(result.tokens) tokens\t\(text)"
            }
            return "\(labels.joined(separator: " "))\t\(result.tokens) tokens\t\(text)"
        case .embedding(let values):
            let head = values.prefix(4).map { String(format: "%.4f", $0) }.joined(separator: ", ")
            return "embedding[\(values.count)] [\(head), …]\t\(result.tokens) tokens\t\(text)"
        }
    }

    /// JSON string literal with the escapes RFC 8259 requires.
    static func jsonString(_ value: String) -> String {
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
