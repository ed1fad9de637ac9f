// Engine benchmark: prints one JSON object per measurement (Benchmarks/run turns them into a table beside
// PyTorch+PEFT's figures for the same inputs). Release build only; not a test.
import AdapterEngine
import Foundation

let arguments = CommandLine.arguments
guard arguments.count >= 3 else {
    FileHandle.standardError.write(Data("usage: EngineBenchmark MODEL_DIR ADAPTERS_DIR [ADAPTER...]\n".utf8))
    exit(2)
}
FileHandle.standardError.write(Data("\(ExecutionRuntime.configure())\n".utf8))
let modelDirectory = arguments[1]
let adaptersDirectory = arguments[2]
let adapterNames = arguments.count > 3 ? Array(arguments[3...]) : ["intent", "severity", "rand-r4-rslora-dense", "rand-r16-fp16"]

/// The same synthetic token ids the PyTorch peer uses: `[CLS]`, words, `[SEP]`.
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
    print("{\"engine\":\"adapterd\",\"metric\":\"\(metric)\",\"value\":\(value),\"unit\":\"\(unit)\"}")
    fflush(nil)
}

let engine = try InferenceEngine(modelDirectory: modelDirectory)
let intent = try LoRAAdapter(directory: adaptersDirectory + "/intent", model: engine.model)

for length in [16, 64, 128] {
    let input = [EncodedInput(ids: tokens(length), adapter: intent)]
    report("batch1_latency_\(length)", try median(iterations: 60) { _ = try engine.run(encoded: input) }, "ms")
}

// Batch of 32 rows of 32 tokens: one adapter for all rows, then 32 distinct adapter instances.
let distinct = try (0..<32).map { _ in try LoRAAdapter(directory: adaptersDirectory + "/intent", model: engine.model) }
let uniformBatch = (0..<32).map { EncodedInput(ids: tokens(32, seed: $0), adapter: intent) }
let mixedBatch = (0..<32).map { EncodedInput(ids: tokens(32, seed: $0), adapter: distinct[$0]) }
let uniform = try median(iterations: 20) { _ = try engine.run(encoded: uniformBatch) }
let mixed = try median(iterations: 20) { _ = try engine.run(encoded: mixedBatch) }
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
