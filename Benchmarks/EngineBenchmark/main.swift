// Engine benchmark: prints one JSON object per measurement (Benchmarks/run turns them into a table beside
// PyTorch+PEFT's and ONNX Runtime's figures for the same inputs). Release build only; not a test.
//
// usage: EngineBenchmark MODEL_DIR ADAPTERS_DIR [--precision fp32|int8|bf16] [--path NAME] [--rss | --profile B T S | --serve]
//   --rss: only load the base model and 100 adapters, run once, and report the peak resident set.
//   --profile B T S: run batches of B sequences of T tokens for S seconds (attach a profiler).
//   --serve: answer "B T N" lines on stdin with the median ms of N runs (for Benchmarks/interleave.py).
import AdapterEngine
import Foundation

var arguments = Array(CommandLine.arguments.dropFirst())
func option(_ name: String, in arguments: inout [String]) -> String? {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
    defer { arguments.removeSubrange(index...(index + 1)) }
    return arguments[index + 1]
}
// --tokenize MODEL_DIR TEXTS_FILE [--dump-ids] [...]: the tokenizer alone, before any engine is built (TokenizerThroughput.swift).
if let index = arguments.firstIndex(of: "--tokenize") { exit(tokenizerThroughput(arguments.enumerated().filter { $0.offset != index }.map(\.element))) }
let precision = option("--precision", in: &arguments).flatMap(Precision.init(rawValue:)) ?? .fp32
let path = option("--path", in: &arguments).flatMap(KernelPath.init(name:)) ?? .detected
let labelCheckFactor = option("--label-check-factor", in: &arguments).flatMap(Float.init) ?? 0
// --merge-mib N: the engine may merge adapters into copies of their layers (`--methods` then times each adapter
// both ways).
let mergeBytes = (option("--merge-mib", in: &arguments).flatMap(Int.init) ?? 0) << 20
let rssOnly = arguments.contains("--rss")
// Only the unmerged-LoRA cost (for iterating on the LoRA kernels).
let loraOnly = arguments.contains("--lora-only")
let serve = arguments.contains("--serve")
arguments.removeAll { $0 == "--rss" || $0 == "--lora-only" || $0 == "--serve" }
guard arguments.count >= 2 else {
    FileHandle.standardError.write(Data("usage: EngineBenchmark MODEL_DIR ADAPTERS_DIR [--precision fp32|int8|bf16] [--path NAME] [--label-check-factor F] [--rss]\n".utf8))
    exit(2)
}
let modelDirectory = arguments[0]
let adaptersDirectory = arguments[1]
let adapterNames = ["intent", "severity", "rand-r4-rslora-dense", "rand-r16-fp16"]
let label = "adapterd-\(precision)"
// The GEMMs' instruction set is process-wide: set it before the first engine.
ExecutionRuntime.configure(path: path)

/// The same synthetic token ids the peers use: `[CLS]`, words, `[SEP]`.
func tokens(_ length: Int, seed: Int = 0) -> [Int32] {
    [101] + (0..<(length - 2)).map { Int32(1000 + (($0 + seed) * 7919) % 20000) } + [102]
}

/// Median wall time in milliseconds of `body` over `iterations` runs after `warmup` runs.
func median(iterations: Int, warmup: Int = 3, _ body: () throws -> Void) rethrows -> Double {
    for _ in 0..<warmup { try body() }
    var samples: [Double] = []
    let clock = ContinuousClock()
    for _ in 0..<iterations {
        let elapsed = try clock.measure { try body() }
        samples.append(Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1e3)
    }
    return samples.sorted()[samples.count / 2]
}

func report(_ metric: String, _ value: Double, _ unit: String) {
    print("{\"engine\":\"\(label)\",\"metric\":\"\(metric)\",\"value\":\(value),\"unit\":\"\(unit)\"}")
    fflush(nil)
}

/// Peak resident set of this process: VmHWM from /proc/self/status (ru_maxrss of a child starts at its parent's
/// peak on Linux, so it overstates a process launched from a large one).
func peakResidentMiB() -> Double {
    if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
       let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
       let kib = Double(line.split(separator: " ").dropFirst().first ?? "") {
        return kib / 1024
    }
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
}

// The timed shapes run INT8 without the FP32 re-check of near ties by default (`--label-check-factor F` turns it
// on), as ONNX Runtime's INT8 runs; `--label-check DIR` measures the check itself.
let engine = try InferenceEngine(
    modelDirectory: modelDirectory, precision: precision, path: path, labelCheckFactor: labelCheckFactor, mergeBytes: mergeBytes)
FileHandle.standardError.write(Data("\(label): kernels \(engine.path), \(engine.plan.runtime)\n".utf8))
let intent = try LoRAAdapter(directory: adaptersDirectory + "/intent", model: engine.model)

// --profile BATCH LENGTH SECONDS [--profile-adapter DIR]: runs one shape in a loop (with the intent adapter, or the
// one in DIR; merged with --merge-mib), for a profiler to attach to.
let profiled = try option("--profile-adapter", in: &arguments).map { try LoRAAdapter(directory: $0, model: engine.model) } ?? intent
if let index = arguments.firstIndex(of: "--profile"), index + 3 < arguments.count,
   let batch = Int(arguments[index + 1]), let length = Int(arguments[index + 2]), let seconds = Double(arguments[index + 3]) {
    // With a merge budget (`--merge-mib`), merged into its layers as `--serve` runs it.
    if engine.mergeBudget != nil, !engine.prepareMerged(profiled) {
        FileHandle.standardError.write(Data("\(profiled.name) did not fit the merge budget\n".utf8))
    }
    let inputs = (0..<batch).map { EncodedInput(ids: tokens(length, seed: $0), adapter: profiled) }
    let end = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    var runs = 0
    while ContinuousClock.now < end {
        _ = try engine.run(encoded: inputs)
        runs += 1
    }
    FileHandle.standardError.write(Data("\(runs) runs of \(batch) × \(length) tokens\n".utf8))
    exit(0)
}

// --label-check DIR [--texts FILE.jsonl] [--rounds N]: INT8's label check on each adapter under DIR (LabelCheckStudy).
if let directory = option("--label-check", in: &arguments) {
    let textsFile = option("--texts", in: &arguments)
    let rounds = option("--rounds", in: &arguments).flatMap(Int.init) ?? 7
    let texts = try textsFile.map { file in
        try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n").compactMap { line -> String? in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            return object?["text"] as? String
        }
    } ?? []
    let study = LabelCheckStudy(model: engine.model, path: path, texts: texts)
    let names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
    if !texts.isEmpty { for name in names { try study.accuracy(name, directory + "/" + name) } }
    if rounds > 0 { try study.cost(names, directory, rounds: rounds) }
    exit(0)
}

// --methods DIR: what each adapter directory under DIR (PEFT methods beyond LoRA, say) costs over the base pass,
// against the LoRA intent adapter, at b1 and b32 × 16 tokens; each round runs base, intent and every adapter in
// turn, so drift hits all alike, and the figure is the median of the per-round ratios to the base pass.
if let directory = option("--methods", in: &arguments) {
    let names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
    let unmerged: [(String, LoRAAdapter?)] = [("base", nil), ("lora-intent", intent)]
        + (try names.map { ($0, try LoRAAdapter(directory: directory + "/" + $0, model: engine.model)) })
    // With a merge budget, a second copy of each adapter merged into its layers (the first stays unmerged).
    let merged: [(String, LoRAAdapter?)] = engine.mergeBudget == nil ? [] : try unmerged.dropFirst().map { name, _ in
        let copy = try LoRAAdapter(directory: name == "lora-intent" ? adaptersDirectory + "/intent" : directory + "/" + name, model: engine.model)
        guard engine.prepareMerged(copy) else { throw CocoaError(.featureUnsupported, userInfo: [NSLocalizedDescriptionKey: "\(name) did not fit the merge budget"]) }
        return (name + "+merged", copy)
    }
    let adapters = unmerged + merged
    for batch in [1, 32] {
        var ratios = [String: [Double]]()
        for _ in 0..<9 {
            var times = [String: Double]()
            for (name, adapter) in adapters {
                let inputs = (0..<batch).map { EncodedInput(ids: tokens(16, seed: $0), adapter: adapter) }
                times[name] = try median(iterations: batch == 1 ? 31 : 7, warmup: 2) { _ = try engine.run(encoded: inputs) }
            }
            for (name, _) in adapters { ratios[name, default: []].append(times[name]! / times["base"]!) }
        }
        for (name, adapter) in adapters {
            let values = ratios[name]!.sorted()
            let rank = adapter?.maxRank ?? 0
            let padded = name.padding(toLength: 16, withPad: " ", startingAt: 0)
            FileHandle.standardError.write(Data("b\(batch) \(padded) rank \(rank)  \(String(format: "%.3f", values[values.count / 2]))× base\n".utf8))
            report("method_\(name)_b\(batch)_t16_vs_base", values[values.count / 2], "ratio")
        }
    }
    /// 32 rows over `adapters` in turn (a mixed batch of every method) against 32 rows of `adapters[0]` alone: the
    /// median over 9 paired rounds, reported as `metric`.
    func mixedOverUniform(_ adapters: [LoRAAdapter?], metric: String, _ description: String) throws {
        let mixed = (0..<32).map { EncodedInput(ids: tokens(16, seed: $0), adapter: adapters[$0 % adapters.count]) }
        let uniform = (0..<32).map { EncodedInput(ids: tokens(16, seed: $0), adapter: adapters[0]) }
        var ratios: [Double] = []
        for _ in 0..<9 {
            let mixedTime = try median(iterations: 7, warmup: 2) { _ = try engine.run(encoded: mixed) }
            let uniformTime = try median(iterations: 7, warmup: 2) { _ = try engine.run(encoded: uniform) }
            ratios.append(mixedTime / uniformTime)
        }
        ratios.sort()
        FileHandle.standardError.write(Data("b32 mixed over \(adapters.count) \(description): \(String(format: "%.3f", ratios[4]))× a uniform batch of the LoRA adapter\n".utf8))
        report(metric, ratios[4], "ratio")
    }
    try mixedOverUniform(unmerged.dropFirst().map(\.1), metric: "methods_mixed_b32_t16_vs_uniform_lora", "adapters")
    // The same over the merged copies, against a uniform batch of the merged LoRA adapter.
    if !merged.isEmpty { try mixedOverUniform(merged.map(\.1), metric: "methods_mixed_merged_b32_t16_vs_uniform_lora", "merged adapters") }
    for (name, adapter) in unmerged.dropFirst() {
        let path = name == "lora-intent" ? adaptersDirectory + "/intent" : directory + "/" + name
        let disk = (try? FileManager.default.attributesOfItem(atPath: path + "/adapter_model.safetensors")[.size] as? Int) ?? 0
        FileHandle.standardError.write(Data("\(name.padding(toLength: 16, withPad: " ", startingAt: 0)) \(disk / 1024) KiB on disk, \(adapter!.byteSize / 1024) KiB in memory\n".utf8))
    }
    for (name, adapter) in merged {
        FileHandle.standardError.write(Data("\(name.padding(toLength: 24, withPad: " ", startingAt: 0)) \(adapter!.merges.bytes / 1024) KiB of merged layers\n".utf8))
    }
    exit(0)
}

// --serve [--serve-adapter NAME]: for Benchmarks/interleave.py, which alternates this process with its peers so that
// the machine's drift hits all of them alike. Each line "BATCH LENGTH ITERATIONS" on stdin is answered with the
// milliseconds of that many runs (after two warm-up runs) of the intent adapter (or NAME's) on the usual token ids:
// the median, or with the label check on the mean, which counts batches that start in another pass; "ready" comes first.
if serve {
    let served = try option("--serve-adapter", in: &arguments).map { try LoRAAdapter(directory: adaptersDirectory + "/" + $0, model: engine.model) } ?? intent
    // With a merge budget (`--merge-mib`), as the worker runs a served adapter: merged into its layers.
    if engine.mergeBudget != nil, !engine.prepareMerged(served) {
        FileHandle.standardError.write(Data("\(served.name) did not fit the merge budget\n".utf8))
        exit(1)
    }
    print("ready")
    fflush(nil)
    while let line = readLine() {
        let fields = line.split(separator: " ").compactMap { Int($0) }
        guard fields.count == 3 else { break }
        let inputs = (0..<fields[0]).map { EncodedInput(ids: tokens(fields[1], seed: $0), adapter: served) }
        if engine.labelCheckFactor > 0 {
            for _ in 0..<2 { _ = try engine.run(encoded: inputs) }
            let elapsed = try ContinuousClock().measure { for _ in 0..<fields[2] { _ = try engine.run(encoded: inputs) } }
            print((Double(elapsed.components.seconds) * 1e3 + Double(elapsed.components.attoseconds) / 1e15) / Double(fields[2]))
        } else {
            print(try median(iterations: fields[2], warmup: 2) { _ = try engine.run(encoded: inputs) })
        }
        fflush(nil)
    }
    FileHandle.standardError.write(Data("\(label): \(engine.labelRechecks) rows answered by a more exact pass of the label check\n".utf8))
    exit(0)
}

if rssOnly {
    let adapters = try (0..<100).map { try LoRAAdapter(directory: adaptersDirectory + "/" + adapterNames[$0 % adapterNames.count], model: engine.model) }
    _ = try engine.run(encoded: [EncodedInput(ids: tokens(16), adapter: adapters[0])])
    report("peak_rss_100_adapters", peakResidentMiB(), "MiB")
    exit(0)
}

// The peers' shapes: batch 1 and 32, 16, 52 and 128 tokens, the intent adapter (classifier head included).
for length in loraOnly ? [] : [16, 52, 128] {
    let single = [EncodedInput(ids: tokens(length), adapter: intent)]
    report("latency_b1_t\(length)", try median(iterations: 60) { _ = try engine.run(encoded: single) }, "ms")
    let batch = (0..<32).map { EncodedInput(ids: tokens(length, seed: $0), adapter: intent) }
    report("latency_b32_t\(length)", try median(iterations: length > 64 ? 8 : 15) { _ = try engine.run(encoded: batch) }, "ms")
}
if precision == .int8, !loraOnly {
    // What a near tie costs with the check on: the batch-1 pass with its row re-checked in FP32.
    let always = InferenceEngine(model: engine.model, precision: .int8, path: path, labelCheckFactor: .infinity)
    let single = [EncodedInput(ids: tokens(16), adapter: intent)]
    report("latency_b1_t16_rechecked", try median(iterations: 60) { _ = try always.run(encoded: single) }, "ms")
}

// Unmerged LoRA cost: batch 1 × 16 tokens with the adapter versus the base pass with the same head (the adapter with
// its LoRA pairs taken out, on the same engine, so both read the same prepared weights), measured interleaved so
// that drift of the machine hits both alike. The merged model (its own copy of the weights) is reported beside it.
do {
    let merged = MergedModel(base: engine.model, adapter: intent, precision: precision, path: path)
    let request = tokens(16)
    // Paired rounds: each round's ratio compares runs a few milliseconds apart, and the median of the ratios is
    // reported (a ratio of overall medians moved by ±4% between runs on this VM with the LoRA terms switched off).
    // Each pair runs in both orders (the order alternates by round): the merged model reads its own copy of the
    // weights, and whichever pass runs right after it finds the shared weights colder in this VM's share of the
    // cache. With a fixed order (unmerged after merged, then the base pass) the base pass looked 13% faster than
    // the unmerged one only because it ran second.
    var overBase: [Double] = [], overMerged: [Double] = []
    let unmerged = { try median(iterations: 15, warmup: 2) { _ = try engine.run(encoded: [EncodedInput(ids: request, adapter: intent)]) } }
    let base = { try median(iterations: 15, warmup: 2) { _ = try engine.run(encoded: [EncodedInput(ids: request, adapter: merged.adapter)]) } }
    let mergedPass = { try median(iterations: 15, warmup: 2) { _ = try merged.engine.run(encoded: [EncodedInput(ids: request, adapter: merged.adapter)]) } }
    for round in 0..<41 {
        if round % 2 == 0 {
            let u = try unmerged(), b = try base()
            overBase.append(u / b)
        } else {
            let b = try base(), u = try unmerged()
            overBase.append(u / b)
        }
    }
    for round in 0..<21 {
        if round % 2 == 0 {
            let u = try unmerged(), m = try mergedPass()
            overMerged.append(u / m)
        } else {
            let m = try mergedPass(), u = try unmerged()
            overMerged.append(u / m)
        }
    }
    report("lora_overhead_b1_t16", (overBase.sorted()[overBase.count / 2] - 1) * 100, "%")
    report("unmerged_vs_merged_b1_t16", (overMerged.sorted()[overMerged.count / 2] - 1) * 100, "%")
}
if loraOnly { exit(0) }

// Batch of 32 rows of 32 tokens: one adapter for all rows, then 32 distinct adapter instances.
let distinct = try (0..<32).map { _ in try LoRAAdapter(directory: adaptersDirectory + "/intent", model: engine.model) }
let uniformBatch = (0..<32).map { EncodedInput(ids: tokens(32, seed: $0), adapter: intent) }
let mixedBatch = (0..<32).map { EncodedInput(ids: tokens(32, seed: $0), adapter: distinct[$0]) }
var uniformSamples: [Double] = [], mixedSamples: [Double] = []
// Interleaved rounds, the order alternating, so that drift of a shared VM hits both alike.
for round in 0..<9 {
    let first = round % 2 == 0 ? uniformBatch : mixedBatch, second = round % 2 == 0 ? mixedBatch : uniformBatch
    let a = try median(iterations: 3, warmup: 1) { _ = try engine.run(encoded: first) }
    let b = try median(iterations: 3, warmup: 1) { _ = try engine.run(encoded: second) }
    uniformSamples.append(round % 2 == 0 ? a : b)
    mixedSamples.append(round % 2 == 0 ? b : a)
}
let uniform = uniformSamples.sorted()[4], mixed = mixedSamples.sorted()[4]
report("batch32_uniform_throughput", 32_000 / uniform, "seq/s")
report("batch32_mixed_throughput", 32_000 / mixed, "seq/s")

for name in adapterNames {
    let directory = adaptersDirectory + "/" + name
    report("cold_load_\(name)", try median(iterations: 30) { _ = try LoRAAdapter(directory: directory, model: engine.model) }, "ms")
}

// Switch cost: 64 batch-1 requests on one adapter versus alternating between two identically shaped ones.
let other = try LoRAAdapter(directory: adaptersDirectory + "/intent", model: engine.model)
let request = tokens(16)
let single = try median(iterations: 15) {
    for _ in 0..<64 { _ = try engine.run(encoded: [EncodedInput(ids: request, adapter: intent)]) }
}
let alternating = try median(iterations: 15) {
    for index in 0..<64 { _ = try engine.run(encoded: [EncodedInput(ids: request, adapter: index % 2 == 0 ? intent : other)]) }
}
report("switch_single_64", single, "ms")
report("switch_alternating_64", alternating, "ms")
