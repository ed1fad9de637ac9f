import CDNNL

/// Row-major matrix products on oneDNN (chosen by measurement over OpenBLAS and BLIS: Benchmarks/README.md).
enum GEMM {
    private static let noTranspose = CChar(UInt8(ascii: "N"))
    private static let transpose = CChar(UInt8(ascii: "T"))

    /// `C[m × n] = alpha · A[m × k] · op(B) + beta · C`, with `op(B)` = `B[k × n]`, or `Bᵀ` of `B[n × k]` when
    /// `transposeB`.
    static func sgemm(
        m: Int, n: Int, k: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int, transposeB: Bool, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        let status = dnnl_sgemm(
            noTranspose, transposeB ? transpose : noTranspose, dnnl_dim_t(m), dnnl_dim_t(n), dnnl_dim_t(k), alpha,
            a, dnnl_dim_t(lda), b, dnnl_dim_t(ldb), beta, c, dnnl_dim_t(ldc))
        precondition(status == dnnl_success, "dnnl_sgemm(\(m)×\(n)×\(k)) failed with status \(status.rawValue)")
    }

    /// `C[m × n] = A[m × k] · B[k × n]` in int32, `A` unsigned and `B` signed 8-bit.
    static func u8s8s32(
        m: Int, n: Int, k: Int, a: UnsafePointer<UInt8>, lda: Int, b: UnsafePointer<Int8>, ldb: Int,
        c: UnsafeMutablePointer<Int32>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        var offset: Int32 = 0
        let status = dnnl_gemm_u8s8s32(
            noTranspose, noTranspose, CChar(UInt8(ascii: "F")), dnnl_dim_t(m), dnnl_dim_t(n), dnnl_dim_t(k), 1,
            a, dnnl_dim_t(lda), 0, b, dnnl_dim_t(ldb), 0, 0, c, dnnl_dim_t(ldc), &offset)
        precondition(status == dnnl_success, "dnnl_gemm_u8s8s32(\(m)×\(n)×\(k)) failed with status \(status.rawValue)")
    }
}
