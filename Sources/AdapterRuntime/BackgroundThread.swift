import CBackgroundYield
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs slow work (hashing, copying, parsing, a smoke inference) on threads at idle scheduling priority: on a small
/// edge CPU the engine's thread team then keeps the cores, and a load never slows the requests being served.
public enum BackgroundThread {
    /// The result of `body`, computed on one of a few long-lived idle-priority threads: for the short steps of a
    /// load, which would otherwise create and tear down a thread each (the new thread runs at normal priority
    /// until it lowers itself, and unmapping its stack interrupts every core the engine runs on). `body` runs with
    /// the yield timer (`yieldInterval`); the engine pauses it around its oneDNN calls, as `withoutYieldTimer` does.
    public static func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            IdleThreadPool.shared.submit { continuation.resume(returning: body()) }
        }
    }

    /// The result of `body`, computed on a new idle-priority thread called `name`: for long work (a training) that
    /// must not hold a pool thread the loads need.
    public static func runDedicated<T: Sendable>(name: String, _ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            // No yield timer: a training runs oneDNN's GEMMs throughout, where the timer would stay paused; it yields
            // at the pauses between its layers instead.
            let thread = Thread {
                lowerPriority(name: name)
                continuation.resume(returning: body())
            }
            thread.start()
        }
    }

    /// How often a background thread gives up its CPU while it works (`CBackgroundYield`): a request's thread that
    /// the scheduler queued behind it waits at most this long instead of up to a scheduler tick (4 ms).
    static let yieldInterval = Duration.microseconds(250)

    /// `body`'s result, computed with the calling background thread yielding its CPU every `yieldInterval`.
    static func working<T>(_ body: () -> T) -> T {
        _ = adk_yield_timer_create()
        adk_yield_timer_arm(Int(yieldInterval.components.attoseconds / 1_000_000_000_000))
        defer { adk_yield_timer_arm(0) }
        return body()
    }

    /// How many times the calling thread has given up its CPU on the yield timer.
    public static var yieldsOnThisThread: Int { adk_yield_count() }

    /// `body`'s result, with the calling background thread's yield timer paused (elsewhere it just runs `body`): for
    /// blocking waits (for a gap between requests), which the signal would otherwise interrupt every interval. The
    /// engine pauses the timer the same way around its oneDNN calls, which must not take the signal.
    public static func withoutYieldTimer<T>(_ body: () throws -> T) rethrows -> T {
        let interval = adk_yield_timer_suspend()
        defer { if interval > 0 { adk_yield_timer_arm(interval) } }
        return try body()
    }

    /// Gives up the CPU to any thread waiting for it: a yield point between the layers of a smoke inference or a
    /// training (which runs without the yield timer).
    public static func yieldNow() {
        sched_yield()
    }

    /// SCHED_IDLE for the calling thread (nice 19 where refused), and its name as `top` and `perf` show it.
    static func lowerPriority(name: String) {
        #if os(Linux)
        // SCHED_IDLE: runs only when no normal thread wants the CPU. It is 5 on Linux; Glibc does not export the
        // macro to Swift.
        var parameters = sched_param(sched_priority: 0)
        if sched_setscheduler(0, 5, &parameters) != 0 {
            _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 19)
        }
        #endif
        Thread.current.name = String(name.prefix(15))
    }
}

/// Long-lived idle-priority threads taking jobs in order. A job waits only when every thread is busy and
/// `maximumThreads` run; threads beyond `parkedThreads` end when they find no work.
///
/// A class with a lock because its threads are not Swift tasks.
final class IdleThreadPool: @unchecked Sendable {
    static let shared = IdleThreadPool()

    private let condition = NSCondition()
    private var jobs: [() -> Void] = []
    private var threads = 0
    private var waiting = 0
    private let parkedThreads = 2
    private let maximumThreads = 4

    func submit(_ job: @escaping () -> Void) {
        condition.lock()
        jobs.append(job)
        // A new thread only when no parked one can take the job.
        let start = jobs.count > waiting && threads < maximumThreads
        if start { threads += 1 }
        condition.signal()
        condition.unlock()
        if start {
            Thread { [self] in work() }.start()
        }
    }

    private func work() {
        BackgroundThread.lowerPriority(name: "adapterd-load")
        condition.lock()
        while true {
            while jobs.isEmpty {
                if waiting >= parkedThreads {
                    threads -= 1
                    condition.unlock()
                    return
                }
                waiting += 1
                condition.wait()
                waiting -= 1
            }
            let job = jobs.removeFirst()
            condition.unlock()
            BackgroundThread.working(job)
            condition.lock()
        }
    }
}
