import CBackgroundYield

/// How the engine calls into oneDNN from any thread: with the calling thread's yield timer (`CBackgroundYield`, armed
/// on background threads) paused for the call. A yield signal arriving during `dnnl_sgemm` corrupted its heap
/// workspace (glibc: "corrupted size vs. prev_size"); the engine's own kernels take the signal safely, so a background
/// pass keeps yielding everywhere but inside oneDNN. On threads without a timer this costs a thread-local read.
enum OneDNNCall {
    /// `body`'s result, with the calling thread's yield timer paused while it runs.
    @inline(__always)
    static func run<T>(_ body: () -> T) -> T {
        let interval = adk_yield_timer_suspend()
        defer { if interval > 0 { adk_yield_timer_arm(interval) } }
        return body()
    }
}
