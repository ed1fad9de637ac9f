import COpenBLAS
import Foundation

/// Facts about, and a fix for, the OpenBLAS build the engine runs on.
public enum BLASRuntime {
    /// The kernel family OpenBLAS chose for this CPU (e.g. "Haswell", "SkylakeX", "Prescott").
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// Threads OpenBLAS uses for one product.
    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// Kernel families OpenBLAS falls back to when it does not recognise a CPU; on a machine with AVX2 they run
    /// matrix products several times slower than the Haswell kernels.
    static let genericCores: Set<String> = ["Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Katmai", "Coppermine", "Northwood", "Banias"]

    /// Whether OpenBLAS fell back to generic kernels although the CPU has AVX2 and FMA. Debian 12's OpenBLAS
    /// (0.3.21) does this on CPUs newer than it knows, such as Sapphire Rapids.
    public static var usesGenericKernelsOnCapableCPU: Bool {
        guard genericCores.contains(coreName),
              let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flags = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
        else { return false }
        let set = Set(flags.split(separator: " "))
        return set.contains("avx2") && set.contains("fma")
    }

    /// Restarts the current process with `OPENBLAS_CORETYPE=Haswell` when OpenBLAS picked generic kernels on an
    /// AVX2 CPU and the user has not chosen a core type. OpenBLAS reads the variable only while it loads, before
    /// `main`, so a restart is the only way to apply it. Returns normally when nothing needs to change.
    public static func restartWithOptimizedKernelsIfNeeded() {
        guard ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil, usesGenericKernelsOnCapableCPU else { return }
        setenv("OPENBLAS_CORETYPE", "Haswell", 1)
        // The new image inherits this thread's signal mask; runtime threads block SIGTERM, which would leave the
        // restarted process deaf to it.
        var empty = sigset_t()
        sigemptyset(&empty)
        pthread_sigmask(SIG_SETMASK, &empty, nil)
        let arguments = CommandLine.arguments.map { strdup($0) } + [nil]
        execv("/proc/self/exe", arguments)
        // execv only returns on failure; carry on with the slower kernels.
    }
}
