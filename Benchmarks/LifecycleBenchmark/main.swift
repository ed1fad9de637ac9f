// Adapter lifecycle at fleet scale: 1,000 registered adapters (distinct weights, PEFT's layout) under a 64 MiB
// cache budget. Measures, in one run: the routing decision and the session-affinity lookup (SQLite), a hot switch
// (activation) and a cache hit, a cold load, and requests/s with traffic over 100 adapters against one adapter.
// Release build only; not a test.
import AdapterEngine
import AdapterRuntime
import AdapterdCore
import Foundation

let arguments = CommandLine.arguments
guard arguments.count == 3 else {
    FileHandle.standardError.write(Data("usage: LifecycleBenchmark MODEL_DIR TEMPLATE_ADAPTER_DIR\n".utf8))
    exit(2)
}

func microseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1e6 + Double(duration.components.attoseconds) / 1e12
}

func percentiles(_ values: [Double]) -> (p50: Double, p99: Double) {
    let sorted = values.sorted()
    return (sorted[sorted.count / 2], sorted[min(sorted.count - 1, Int(Double(sorted.count) * 0.99))])
}

func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

/// A deterministic generator, so every run benchmarks the same adapters.
struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
    mutating func unit() -> Float { Float(next() >> 40) / Float(1 << 24) }
}

/// Writes `count` adapters shaped like `template` (same config and tensor names), each with its own weights.
func makeAdapters(from template: String, count: Int, into directory: String) throws -> [String] {
    let file = try SafeTensorsFile(path: template + "/adapter_model.safetensors")
    let config = try Data(contentsOf: URL(fileURLWithPath: template + "/adapter_config.json"))
    let labels = FileManager.default.contents(atPath: template + "/labels.json")
    var random = SplitMix(state: 42)
    var paths: [String] = []
    for index in 0..<count {
        var writer = SafeTensorsWriter()
        for info in file.tensors.values.sorted(by: { $0.name < $1.name }) {
            let tensor = try file.tensor(info)
            let scale = 0.5 + random.unit()
            writer.add(info.name, shape: info.shape, values: (0..<tensor.count).map { tensor.pointer[$0] * scale + (random.unit() - 0.5) * 1e-3 })
        }
        let path = directory + "/adapter-\(index)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try writer.data().write(to: URL(fileURLWithPath: path + "/adapter_model.safetensors"))
        try config.write(to: URL(fileURLWithPath: path + "/adapter_config.json"))
        if let labels { try labels.write(to: URL(fileURLWithPath: path + "/labels.json")) }
        paths.append(path)
    }
    return paths
}

func benchmark() async throws {
    let modelDirectory = arguments[1]
    let work = NSTemporaryDirectory() + "adapterd-lifecycle-bench-" + UUID().uuidString.prefix(8)
    defer { try? FileManager.default.removeItem(atPath: work) }
    let adapterCount = 1000, budget = 64 << 20
    let engine = try InferenceEngine(modelDirectory: modelDirectory)
    let paths = try makeAdapters(from: arguments[2], count: adapterCount, into: work + "/sources")
    let store = try AdapterStore(dataDirectory: work + "/data")
    let registry = AdapterRegistry(engine: engine, store: store, baseFingerprint: "bench", cacheBytes: budget)

    // Register all of them: import, validate, smoke inference, SQLite row.
    var registerTimes: [Double] = []
    for (index, path) in paths.enumerated() {
        let start = ContinuousClock.now
        try await registry.load(name: "a\(index)", version: "v1", path: path, actor: "bench")
        registerTimes.append(microseconds(ContinuousClock.now - start))
    }
    let adapterBytes = try LoRAAdapter(directory: paths[0], model: engine.model, name: "a0").byteSize
    say("adapters: \(adapterCount) registered, \(adapterBytes / 1024) KiB each in memory, cache budget \(budget >> 20) MiB (~\(budget / adapterBytes) fit)")
    let register = percentiles(registerTimes)
    say(String(format: "register (import + validate + smoke inference): p50 %.2f ms  p99 %.2f ms", register.p50 / 1e3, register.p99 / 1e3))

    // 100 routes by sensor type, as a fleet controller would set them.
    for index in 0..<100 {
        try await registry.setRoute(RouteRecord(
            name: "r\(index)", topic: "adapterd/v1/bench/infer/sensor\(index)/#", sensorType: "", metadata: [:],
            adapter: "a\(index)", priority: index % 5))
    }
    let router = await registry.routeTable

    // Routing decision + affinity lookup (a SQLite read, and the pin written on a session's first request).
    var random = SplitMix(state: 7)
    var routing: [Double] = [], affinity: [Double] = [], both: [Double] = []
    for _ in 0..<20_000 {
        let sensor = Int(random.next() % 100)
        let topic = "adapterd/v1/bench/infer/sensor\(sensor)/dev\(random.next() % 50)"
        let session = "s\(random.next() % 2000)"
        let start = ContinuousClock.now
        let route = router.select(topic: topic, context: ["sensor\(sensor)"], metadata: [:])!
        let routed = ContinuousClock.now
        _ = try await registry.resolve(name: route.adapter, session: session, stickyKey: "", ttl: .seconds(3600))
        let end = ContinuousClock.now
        routing.append(microseconds(routed - start))
        affinity.append(microseconds(end - routed))
        both.append(microseconds(end - start))
    }
    let (r, a, b) = (percentiles(routing), percentiles(affinity), percentiles(both))
    say(String(format: "routing decision (100 routes):      p50 %6.1f µs  p99 %6.1f µs", r.p50, r.p99))
    say(String(format: "affinity lookup (2000 sessions):    p50 %6.1f µs  p99 %6.1f µs", a.p50, a.p99))
    say(String(format: "routing + affinity:                 p50 %6.1f µs  p99 %6.1f µs   (target p99 < 50 µs)", b.p50, b.p99))

    // Hot switch: activate another version of a name (atomic SQLite transaction + in-memory swap).
    try await registry.load(name: "a0", version: "v2", path: paths[1], actor: "bench")
    var switches: [Double] = []
    for index in 0..<500 {
        let start = ContinuousClock.now
        try await registry.activate(name: "a0", version: index % 2 == 0 ? "v2" : "v1", actor: "bench", reason: "")
        switches.append(microseconds(ContinuousClock.now - start))
    }
    let hot = percentiles(switches)
    say(String(format: "hot switch (ActivateAdapter):       p50 %6.1f µs  p99 %6.1f µs", hot.p50, hot.p99))

    // Cache hit and cold load (walking all 1,000 adapters through the 64 MiB budget misses every time).
    let cache = registry.cache
    var hits: [Double] = [], cold: [Double] = []
    let key0 = AdapterCache.Key(name: "a0", version: "v1")
    _ = try await cache.acquire(key0)
    await cache.release(key0)
    for _ in 0..<2000 {
        let start = ContinuousClock.now
        _ = try await cache.acquire(key0)
        hits.append(microseconds(ContinuousClock.now - start))
        await cache.release(key0)
    }
    for index in stride(from: 500, to: 1000, by: 1) {
        let key = AdapterCache.Key(name: "a\(index)", version: "v1")
        let start = ContinuousClock.now
        _ = try await cache.acquire(key)
        cold.append(microseconds(ContinuousClock.now - start))
        await cache.release(key)
    }
    let (hit, miss) = (percentiles(hits), percentiles(cold))
    say(String(format: "cache hit:                          p50 %6.1f µs  p99 %6.1f µs", hit.p50, hit.p99))
    say(String(format: "cold load (mmap + validate):        p50 %6.2f ms  p99 %6.2f ms", miss.p50 / 1e3, miss.p99 / 1e3))
    let counters = await cache.counters
    say("cache after the walk: \(counters.bytes >> 20) MiB held of \(budget >> 20) MiB, \(counters.evictions) evictions")

    // Throughput: 32 concurrent callers through the batching executor, one adapter vs. 100 vs. all 1,000.
    let executor = BatchExecutor(engine: engine, maxBatch: 32)
    defer { executor.shutdown() }
    let texts = (0..<64).map { engine.encode("sensor \($0 % 9) reports vibration above threshold on motor \($0)").ids }
    func throughput(adapters: Int, requests: Int) async throws -> Double {
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for caller in 0..<32 {
                group.addTask {
                    var random = SplitMix(state: UInt64(caller + 1))
                    for index in 0..<(requests / 32) {
                        let key = AdapterCache.Key(name: "a\(random.next() % UInt64(adapters))", version: "v1")
                        let adapter = try await cache.acquire(key)
                        _ = try await executor.run(EncodedInput(ids: texts[(caller + index) % texts.count], adapter: adapter))
                        await cache.release(key)
                    }
                }
            }
            try await group.waitForAll()
        }
        return Double(requests) / (microseconds(ContinuousClock.now - start) / 1e6)
    }
    _ = try await throughput(adapters: 100, requests: 640)  // warm the 100 adapters into the cache
    let one = try await throughput(adapters: 1, requests: 3200)
    let hundred = try await throughput(adapters: 100, requests: 3200)
    let thousand = try await throughput(adapters: 1000, requests: 3200)
    say(String(format: "throughput, 32 callers: 1 adapter %.0f req/s; 100 adapters %.0f req/s (%.2f×, target ≥ 0.8); 1,000 adapters (cache misses) %.0f req/s (%.2f×)",
               one, hundred, hundred / one, thousand, thousand / one))
}

try await benchmark()
