import AdapterRuntime
import Foundation
import Testing

@Suite("BackgroundThread")
struct BackgroundThreadTests {
    @Test("a job runs while another is blocked on a pool thread")
    func jobRunsBesideABlockedOne() async throws {
        let release = DispatchSemaphore(value: 0)
        async let blocked: Int = BackgroundThread.run {
            release.wait()
            return 1
        }
        // The blocked job holds one thread; this one must get another instead of queueing behind it.
        let second = await BackgroundThread.run { 2 }
        #expect(second == 2)
        release.signal()
        #expect(await blocked == 1)
    }

    @Test("many jobs submitted at once all finish with their own results")
    func manyJobsFinish() async {
        let results = await withTaskGroup(of: Int.self) { group in
            for index in 0..<20 { group.addTask { await BackgroundThread.run { index * index } } }
            var all: [Int] = []
            for await value in group { all.append(value) }
            return all.sorted()
        }
        #expect(results == (0..<20).map { $0 * $0 })
    }

    /// Keeps the calling thread's CPU busy for `duration`.
    static func spin(for duration: Duration) -> Int {
        let end = ContinuousClock.now + duration
        var turns = 0
        while ContinuousClock.now < end { turns &+= 1 }
        return turns
    }

    @Test("a working job gives up its CPU every interval, and a blocked wait does not")
    func workingJobYields() async {
        let before = BackgroundThread.yields
        _ = await BackgroundThread.run { Self.spin(for: .milliseconds(30)) }
        let working = BackgroundThread.yields - before
        // 30 ms at one yield per 250 µs is 120; timer slack and a loaded machine take some.
        #expect(working >= 30, "\(working) yields in 30 ms of work")
        let blockedBefore = BackgroundThread.yields
        await BackgroundThread.run {
            BackgroundThread.withoutYieldTimer { usleep(30_000) }
        }
        #expect(BackgroundThread.yields - blockedBefore <= 2, "yields while blocked: \(BackgroundThread.yields - blockedBefore)")
    }

    @Test("a dedicated thread runs a job and returns its result")
    func dedicatedThreadRuns() async {
        let value = await BackgroundThread.runDedicated(name: "test-job") { "done" }
        #expect(value == "done")
    }
}
