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

    /// Keeps the calling thread busy for `milliseconds` of its own CPU time (a busy machine may take turns).
    static func spin(milliseconds: Double) {
        var start = timespec(), now = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &start)
        repeat {
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
        } while Double(now.tv_sec - start.tv_sec) * 1e3 + Double(now.tv_nsec - start.tv_nsec) / 1e6 < milliseconds
    }

    @Test("a working job gives up its CPU every interval, and a blocked wait does not")
    func workingJobYields() async {
        let working = await BackgroundThread.run {
            let before = BackgroundThread.yieldsOnThisThread
            Self.spin(milliseconds: 30)
            return BackgroundThread.yieldsOnThisThread - before
        }
        // 30 ms of work at one yield per 250 µs is 120; expiries while another thread has the CPU merge into one.
        #expect(working >= 20, "\(working) yields in 30 ms of work")
        let blocked = await BackgroundThread.run {
            let before = BackgroundThread.yieldsOnThisThread
            // A bounded blocking wait that nothing ends early, as `BatchExecutor.waitForGap`'s is while requests run.
            BackgroundThread.withoutYieldTimer { _ = DispatchSemaphore(value: 0).wait(timeout: .now() + .milliseconds(30)) }
            return BackgroundThread.yieldsOnThisThread - before
        }
        #expect(blocked <= 1, "\(blocked) yields while blocked")
    }

    @Test("a dedicated thread runs a job and returns its result")
    func dedicatedThreadRuns() async {
        let value = await BackgroundThread.runDedicated(name: "test-job") { "done" }
        #expect(value == "done")
    }
}
