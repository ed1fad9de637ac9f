import AdapterdCore
import AdapterdTestSupport
import AdapterEngine
import AdapterRuntime
import Foundation
import Testing

@Suite("BatchExecutor")
struct BatchExecutorTests {
    static let engine = try! InferenceEngine(modelDirectory: Harness.modelDirectory)

    /// A batch long enough that a waiter certainly sees it running: 32 sequences of 128 tokens.
    static func longBatch(_ executor: BatchExecutor) async -> Int {
        await withTaskGroup(of: Bool.self) { group in
            for seed in 0..<32 {
                group.addTask {
                    let ids = [Int32(101)] + (0..<126).map { Int32(1000 + ($0 * 31 + seed) % 20000) } + [102]
                    return await executor.run(EncodedInput(ids: ids, adapter: nil)) != nil
                }
            }
            var answered = 0
            for await ok in group where ok { answered += 1 }
            return answered
        }
    }

    /// Waits (bounded) until `executor` is running or has rows queued.
    static func waitUntilBusy(_ executor: BatchExecutor) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while !executor.isBusy(within: .zero) {
            try #require(ContinuousClock.now < deadline, "the engine never started the batch")
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    @Test("waiting for a gap returns at once while the engine is idle")
    func gapWhileIdle() async {
        let executor = BatchExecutor(engine: Self.engine)
        defer { executor.shutdown() }
        let waited = await BackgroundThread.run { ContinuousClock().measure { executor.waitForGap(atMost: .seconds(10)) } }
        #expect(waited < .seconds(5), "an idle engine made the wait last \(waited)")
    }

    @Test("waiting for a gap returns only once the running batch has ended")
    func gapAfterBatch() async throws {
        let executor = BatchExecutor(engine: Self.engine)
        defer { executor.shutdown() }
        async let answered = Self.longBatch(executor)
        try await Self.waitUntilBusy(executor)
        let busyAfterWait = await BackgroundThread.run {
            executor.waitForGap(atMost: .seconds(120))
            return executor.isBusy(within: .zero)
        }
        #expect(!busyAfterWait, "the wait returned while a batch was running or queued")
        #expect(await answered == 32)
    }

    @Test("waiting for a gap gives up after its limit while the engine stays busy")
    func gapGivesUp() async throws {
        let executor = BatchExecutor(engine: Self.engine)
        defer { executor.shutdown() }
        async let answered = Self.longBatch(executor)
        try await Self.waitUntilBusy(executor)
        let (busy, waited) = await BackgroundThread.run {
            var busy = false
            let waited = ContinuousClock().measure {
                executor.waitForGap(atMost: .milliseconds(1))
                busy = executor.isBusy(within: .zero)
            }
            return (busy, waited)
        }
        // A batch of 32 × 128 tokens outlasts a 1 ms wait by far; the wait must not have lasted until it ended.
        #expect(busy, "the wait outlasted the whole batch (\(waited))")
        #expect(await answered == 32)
    }
}
