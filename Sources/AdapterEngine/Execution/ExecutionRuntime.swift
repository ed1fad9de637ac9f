import CDNNL
import CEngineKernels
import Foundation

/// The process-wide side of execution: the oneDNN GEMMs' instruction-set ceiling (oneDNN accepts one, before its
/// first product) and what the int8 GEMM can hold without saturating.
public enum ExecutionRuntime {
    /// What the runtime settled on.
    public struct State: Sendable, CustomStringConvertible {
        /// The path the GEMMs were capped at (the first engine's request, or the detected path).
        public let gemmPath: KernelPath
        /// The largest weight magnitude the int8 GEMM multiplies exactly with 8-bit activations (0…255): 127 with
        /// VNNI dot products, 63 where the AVX2/AVX-512 `vpmaddubsw` sequence would otherwise saturate its 16-bit
        /// pair sums (255 · 127 · 2 > 32,767; ONNX Runtime's `reduce_range` does the same).
        public let weightMaximum: Int32
        /// Threads in the OpenMP team (set with `OMP_NUM_THREADS`).
        public let threads: Int
        /// oneDNN's version.
        public let oneDNNVersion: String

        public var description: String {
            "gemm path \(gemmPath), int8 weights ±\(weightMaximum), \(threads) threads, oneDNN \(oneDNNVersion)"
        }
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var settled: State?

    /// Caps the GEMMs at `path` (or the detected path) the first time it is called; later calls return the state
    /// the first one chose, since oneDNN cannot change its ceiling once it has run.
    @discardableResult
    public static func configure(path requested: KernelPath? = nil) -> State {
        lock.lock()
        defer { lock.unlock() }
        if let settled { return settled }
        let path = min(requested ?? KernelPath.detected, KernelPath.detected)
        // A DNNL_MAX_CPU_ISA set by the user wins: oneDNN then refuses this call, which is what we want.
        _ = dnnl_set_max_cpu_isa(path.oneDNNISA)
        let version = dnnl_version().pointee
        let state = State(
            gemmPath: path, weightMaximum: probeWeightMaximum(), threads: Int(adk_team_size()),
            oneDNNVersion: "\(version.major).\(version.minor).\(version.patch)")
        settled = state
        return state
    }

    /// Restarts the current process with `OMP_WAIT_POLICY=passive` unless the user chose a wait policy or spin count.
    /// libgomp reads both only while it loads, before `main`, so a restart is the only way to apply them. A serving
    /// worker wants idle OpenMP threads asleep: spinning ones took CPU from the MQTT threads and the broker, adding
    /// 0.4–0.8 ms to a single client's round trip here (Benchmarks/README.md). Returns when nothing needs to change.
    public static func restartWithPassiveWaitIfNeeded() {
        let environment = ProcessInfo.processInfo.environment
        guard environment["OMP_WAIT_POLICY"] == nil, environment["GOMP_SPINCOUNT"] == nil else { return }
        setenv("OMP_WAIT_POLICY", "passive", 1)
        // The new image inherits this thread's signal mask; runtime threads block SIGTERM, which would leave the
        // restarted process deaf to it.
        var empty = sigset_t()
        sigemptyset(&empty)
        pthread_sigmask(SIG_SETMASK, &empty, nil)
        let arguments = CommandLine.arguments.map { strdup($0) } + [nil]
        execv("/proc/self/exe", arguments)
        // execv only returns on failure; carry on with spinning threads.
    }

    /// Multiplies 255s by 127s once on the INT8 products' path: exact with VNNI or AMX dot products, clipped at
    /// 32,767 per pair by the older `vpmaddubsw` sequence.
    private static func probeWeightMaximum() -> Int32 {
        let k = 64, n = 16
        let a = [UInt8](repeating: 255, count: 16 * k)
        let b = [Int8](repeating: 127, count: k * n)
        var c = [Int32](repeating: 0, count: 16 * n)
        let weights = b.withUnsafeBufferPointer { PackedMatmul.int8.pack($0.baseAddress!, inputs: k, outputs: n) }
        a.withUnsafeBufferPointer { a in
            c.withUnsafeMutableBufferPointer { c in
                PackedMatmul.int8.multiply(rows: 1, a: a.baseAddress!, weights: weights, c: c.baseAddress!)
            }
        }
        return c[0] == Int32(255 * 127 * k) ? 127 : 63
    }

    /// Runs `body` with the GEMMs and kernels it calls held to the calling thread (no OpenMP team): for background
    /// work (training, a smoke inference) that must leave the other cores to the requests being served.
    public static func onCallingThreadOnly<T>(_ body: () throws -> T) rethrows -> T {
        // The team size is per thread in OpenMP: this changes nothing for the engine thread's passes.
        let threads = adk_begin_sequential()
        defer { adk_end_sequential(threads) }
        return try body()
    }
}

extension KernelPath {
    /// oneDNN's ceiling for this path.
    var oneDNNISA: dnnl_cpu_isa_t {
        switch self {
        case .portable: dnnl_cpu_isa_sse41
        case .avx2: dnnl_cpu_isa_avx2
        case .avx2VNNI: dnnl_cpu_isa_avx2_vnni
        case .avx512: dnnl_cpu_isa_avx512_core
        case .avx512VNNI: dnnl_cpu_isa_avx512_core_vnni
        case .avx512BF16: dnnl_cpu_isa_avx512_core_bf16
        case .amx: dnnl_cpu_isa_avx512_core_amx
        }
    }
}
