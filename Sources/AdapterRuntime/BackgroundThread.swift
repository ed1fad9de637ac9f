import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs slow work (hashing, copying, parsing) on a thread of its own at idle scheduling priority: on a small
/// edge CPU the engine's thread team then keeps the cores, and a load never slows the requests being served.
public enum BackgroundThread {
    /// The result of `body`, computed on a new idle-priority thread called `name`.
    public static func run<T: Sendable>(name: String = "adapterd-load", _ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            let thread = Thread {
                #if os(Linux)
                // SCHED_IDLE: runs only when no normal thread wants the CPU (falls back to nice 19 if refused).
                var parameters = sched_param(sched_priority: 0)
                // SCHED_IDLE is 5 on Linux; Glibc does not export the macro to Swift.
                if sched_setscheduler(0, 5, &parameters) != 0 {
                    _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 19)
                }
                #endif
                continuation.resume(returning: body())
            }
            thread.name = name
            thread.start()
        }
    }
}
