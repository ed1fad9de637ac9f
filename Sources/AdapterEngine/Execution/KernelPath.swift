import CEngineKernels

/// The family of CPU kernels the engine runs: the element-wise and attention kernels and the GEMMs' instruction
/// set. Ordered from lowest to highest; a machine supports every path up to the one it detects.
public enum KernelPath: Int, Sendable, CaseIterable, Comparable, CustomStringConvertible {
    /// The compiler's baseline (SSE on x86-64): runs anywhere.
    case portable = 0
    /// AVX2 + FMA (Haswell and later, AMD Zen).
    case avx2
    /// AVX2 with AVX-VNNI's int8 dot products (Alder Lake and later without AVX-512).
    case avx2VNNI
    /// AVX-512 F/BW/DQ/VL (Skylake-X and later, AMD Zen 4).
    case avx512
    /// AVX-512 with VNNI int8 dot products (Cascade Lake and later, Zen 4).
    case avx512VNNI
    /// AVX-512 VNNI plus BF16 dot products (Cooper Lake, Zen 4): the BF16 products (`Precision.bf16`) run natively.
    case avx512BF16
    /// AVX-512 VNNI and BF16 plus AMX int8 tiles for the INT8 products (Sapphire Rapids and later).
    case amx

    /// The name used in settings, status and metrics (`portable`, `avx2`, `avx2-vnni`, `avx512`, `avx512-vnni`,
    /// `avx512-bf16`, `amx`).
    public var description: String {
        switch self {
        case .portable: "portable"
        case .avx2: "avx2"
        case .avx2VNNI: "avx2-vnni"
        case .avx512: "avx512"
        case .avx512VNNI: "avx512-vnni"
        case .avx512BF16: "avx512-bf16"
        case .amx: "amx"
        }
    }

    /// Parses a name as printed by `description`.
    public init?(name: String) {
        guard let path = Self.allCases.first(where: { $0.description == name.lowercased() }) else { return nil }
        self = path
    }

    public static func < (lhs: KernelPath, rhs: KernelPath) -> Bool { lhs.rawValue < rhs.rawValue }

    /// The best path this CPU supports.
    public static let detected: KernelPath = {
        let features = adk_cpu_detect()
        // Every CPU with AMX (Sapphire Rapids on) has AVX-512 BF16 too.
        if features.avx512_vnni != 0 && features.avx512_bf16 != 0 && features.amx_int8 != 0 { return .amx }
        if features.avx512_vnni != 0 && features.avx512_bf16 != 0 { return .avx512BF16 }
        if features.avx512_vnni != 0 { return .avx512VNNI }
        if features.avx512 != 0 { return .avx512 }
        if features.avx2_fma != 0 && features.avx_vnni != 0 { return .avx2VNNI }
        if features.avx2_fma != 0 { return .avx2 }
        return .portable
    }()

    /// Every path this CPU can run, lowest first.
    public static var supported: [KernelPath] {
        allCases.filter { $0 <= detected && ($0 != .avx2VNNI || adk_cpu_detect().avx_vnni != 0) }
    }

    /// The element-wise kernels' instruction set for this path.
    var kernelISA: Int32 {
        switch self {
        case .portable: Int32(ADK_ISA_PORTABLE.rawValue)
        case .avx2, .avx2VNNI: Int32(ADK_ISA_AVX2.rawValue)
        case .avx512: Int32(ADK_ISA_AVX512.rawValue)
        case .avx512VNNI, .avx512BF16, .amx: Int32(ADK_ISA_AVX512_VNNI.rawValue)
        }
    }

    /// Whether the BF16 products run natively on this path (oneDNN's bf16 kernels need AVX-512 BF16 or AMX; without
    /// them its BF16 products were 3× slower than FP32's here).
    public var hasBF16: Bool { self >= .avx512BF16 }

    /// CPU features worth reporting, as cpuid names them.
    public static var cpuFeatures: [String] {
        let f = adk_cpu_detect()
        return [
            ("avx2+fma", f.avx2_fma), ("avx512", f.avx512), ("avx512-vnni", f.avx512_vnni), ("avx512-bf16", f.avx512_bf16),
            ("avx-vnni", f.avx_vnni), ("amx-int8", f.amx_int8), ("amx-bf16", f.amx_bf16),
        ].filter { $0.1 != 0 }.map(\.0)
    }
}
