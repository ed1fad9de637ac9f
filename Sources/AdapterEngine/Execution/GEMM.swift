import CDNNL

/// Row-major FP32 matrix products on oneDNN (chosen by measurement over OpenBLAS, BLIS and oneDNN's matmul
/// primitive: Benchmarks/README.md). The INT8 and BF16 products are `PackedMatmul`'s.
public enum GEMM {
    private static let noTranspose = CChar(UInt8(ascii: "N"))
    private static let transpose = CChar(UInt8(ascii: "T"))

    /// `C[m × n] = alpha · op(A) · op(B) + beta · C`, with `op(A)` = `A[m × k]`, or `Aᵀ` of `A[k × m]` when
    /// `transposeA`, and `op(B)` = `B[k × n]`, or `Bᵀ` of `B[n × k]` when `transposeB`.
    public static func sgemm(
        m: Int, n: Int, k: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int, transposeA: Bool = false,
        b: UnsafePointer<Float>, ldb: Int, transposeB: Bool, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        let status = OneDNNCall.run {
            dnnl_sgemm(
                transposeA ? transpose : noTranspose, transposeB ? transpose : noTranspose, dnnl_dim_t(m), dnnl_dim_t(n),
                dnnl_dim_t(k), alpha, a, dnnl_dim_t(lda), b, dnnl_dim_t(ldb), beta, c, dnnl_dim_t(ldc))
        }
        precondition(status == dnnl_success, "dnnl_sgemm(\(m)×\(n)×\(k)) failed with status \(status.rawValue)")
    }
}
