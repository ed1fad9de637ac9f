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
                    return ((try? await executor.run(EncodedInput(ids: ids, adapter: nil))) ?? nil) != nil
                }
            }
            var answered = 0
            for await ok in group where ok { answered += 1 }
            return answered
        }
    }

    @Test("waiting for a gap returns at once while the engine is idle")
    func gapWhileIdle() async {
        let executor = BatchExecutor(engine: Self.engine)
        defer { executor.shutdown() }
        let waited = await BackgroundThread.run { ContinuousClock().measure { executor.waitForGap(atMost: .seconds(10)) } }
        #expect(waited < .seconds(5), "an idle engine made the wait last \(waited)")
    }

    /// Waits for a gap (at most `limit`) on a background thread while a long batch runs; whether the engine was
    /// still busy when the wait returned. The batch's 32 rows must all be answered.
    static func waitDuringLongBatch(atMost limit: Duration) async throws -> Bool {
        let executor = BatchExecutor(engine: engine)
        defer { executor.shutdown() }
        async let answered = longBatch(executor)
        // The batch's rows reach the queue when the group's tasks start; nothing announces it.
        let queued = await Harness.eventually(timeout: .seconds(30), interval: .milliseconds(1)) { executor.isBusy(within: .zero) }
        try #require(queued, "the engine never took the batch")
        let busy = await BackgroundThread.run {
            executor.waitForGap(atMost: limit)
            return executor.isBusy(within: .zero)
        }
        #expect(await answered == 32)
        return busy
    }

    @Test("waiting for a gap returns only once the running batch has ended")
    func gapAfterBatch() async throws {
        let busy = try await Self.waitDuringLongBatch(atMost: .seconds(120))
        #expect(!busy, "the wait returned while a batch was running or queued")
    }

    @Test("waiting for a gap gives up after its limit while the engine stays busy")
    func gapGivesUp() async throws {
        // A batch of 32 × 128 tokens outlasts a 1 ms wait by far: the wait must return while it still runs.
        let busy = try await Self.waitDuringLongBatch(atMost: .milliseconds(1))
        #expect(busy, "the 1 ms wait lasted until the whole batch had ended")
    }

    @Test("a row the engine refuses gets its error without failing the rows batched with it")
    func refusedRowAlone() async throws {
        let executor = BatchExecutor(engine: Self.engine)
        defer { executor.shutdown() }
        let good = [Int32(101), 2000, 102]
        let bad = [Int32(101), Int32.max, 102]
        let results = await withTaskGroup(of: (Int, Result<InferenceOutput?, InferenceError>).self) { group in
            for index in 0..<8 {
                group.addTask {
                    do throws(InferenceError) {
                        return (index, .success(try await executor.run(EncodedInput(ids: index == 3 ? bad : good, adapter: nil))?.output))
                    } catch {
                        return (index, .failure(error))
                    }
                }
            }
            var out: [Int: Result<InferenceOutput?, InferenceError>] = [:]
            for await (index, result) in group { out[index] = result }
            return out
        }
        for (index, result) in results {
            switch result {
            case .success(let output):
                #expect(index != 3, "the row with token id \(Int32.max) was answered")
                #expect(output != nil, "row \(index) got no output")
            case .failure(let error):
                #expect(index == 3, "row \(index) was refused: \(error)")
                guard case .invalidTokenID = error else {
                    Issue.record("row 3 was refused for another reason: \(error)")
                    continue
                }
            }
        }
    }
}
