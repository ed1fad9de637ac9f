import AdapterEngine
import AdapterRuntime
import Foundation
import Testing

@Suite("AdapterCache")
struct AdapterCacheTests {
    static let root: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let model = try! BertModel(directory: ProcessInfo.processInfo.environment["ADAPTERD_MODEL_DIR"] ?? root + "/models/all-MiniLM-L6-v2")
    static let intentDirectory = root + "/Tests/AdapterEngineTests/Fixtures/minilm-lora/adapters/intent"
    /// One adapter's bytes (all test keys load the same files as distinct instances).
    static let adapterBytes = try! LoRAAdapter(directory: intentDirectory, model: model).byteSize

    /// Counts loads per key.
    final class LoadCounter: @unchecked Sendable {
        private let lock = NSLock()
        private var counts: [String: Int] = [:]
        func add(_ key: String) { lock.withLock { counts[key, default: 0] += 1 } }
        func count(_ key: String) -> Int { lock.withLock { counts[key] ?? 0 } }
    }

    static func cache(budgetAdapters: Int, counter: LoadCounter = LoadCounter(), delay: Duration = .zero) -> AdapterCache {
        AdapterCache(maxBytes: budgetAdapters * adapterBytes) { key in
            counter.add(key.description)
            if delay > .zero { try await Task.sleep(for: delay) }
            return try LoRAAdapter(directory: intentDirectory, model: model, name: key.name)
        }
    }

    @Test("200 adapters cycling never push the cache past its byte budget")
    func budget() async throws {
        let cache = Self.cache(budgetAdapters: 8)
        for round in 0..<2 {
            for index in 0..<200 {
                let key = AdapterCache.Key(name: "a\(index)", version: "v\(round)")
                _ = try await cache.acquire(key)
                await cache.release(key)
                #expect(await cache.counters.bytes <= cache.maxBytes)
            }
        }
        let counters = await cache.counters
        #expect(counters.loads == 400)
        #expect(counters.evictions == 400 - 8)
    }

    @Test("pinned adapters and adapters held by a request in flight are not evicted")
    func pinnedAndInFlight() async throws {
        let cache = Self.cache(budgetAdapters: 2)
        let pinned = AdapterCache.Key(name: "pinned", version: "v1")
        let held = AdapterCache.Key(name: "held", version: "v1")
        await cache.pin("pinned")
        _ = try await cache.acquire(pinned)
        await cache.release(pinned)
        _ = try await cache.acquire(held)  // not released: in flight
        for index in 0..<10 {
            let key = AdapterCache.Key(name: "other\(index)", version: "v1")
            _ = try await cache.acquire(key)
            await cache.release(key)
        }
        #expect(await cache.contains(pinned))
        #expect(await cache.contains(held))
        await cache.release(held)
        _ = try await cache.acquire(AdapterCache.Key(name: "late", version: "v1"))
        #expect(await cache.contains(held) == false)
        #expect(await cache.contains(pinned))
    }

    @Test("concurrent misses for one adapter load it once")
    func concurrentMissesLoadOnce() async throws {
        let counter = LoadCounter()
        let cache = Self.cache(budgetAdapters: 4, counter: counter, delay: .milliseconds(50))
        let key = AdapterCache.Key(name: "shared", version: "v1")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<16 { group.addTask { _ = try await cache.acquire(key) } }
            try await group.waitForAll()
        }
        #expect(counter.count(key.description) == 1)
        #expect(await cache.counters.loads == 1)
        let counters = await cache.counters
        #expect(counters.hits + counters.misses == 16)
    }
}
