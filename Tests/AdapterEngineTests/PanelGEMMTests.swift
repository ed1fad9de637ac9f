@testable import AdapterEngine
import AdapterdTestSupport
import CEngineKernels
import Testing

/// The FP32 panel GEMM (`adk_panel_gemm`) on every kernel path the test machine supports, against a
/// double-precision product.
@Suite("Panel GEMM")
struct PanelGEMMTests {
    /// A deterministic matrix of values in [-0.5, 0.5).
    static func matrix(_ count: Int, seed: Int) -> [Float] {
        (0..<count).map { Float((($0 &* 7919 &+ seed &* 104_729) % 1009)) / 1009 - 0.5 }
    }

    @Test(
        "matches a double-precision product for every tile height, on every supported path",
        arguments: KernelPath.supported)
    func matchesReference(path: KernelPath) {
        let isa = path.kernelISA
        let width = Int(adk_panel_width())
        // Odd inner sizes, a panel count the team splits unevenly, row counts across and beyond one tile.
        for (k, n) in [(37, 3 * width), (384, 2 * width)] {
            let weights = Self.matrix(k * n, seed: k)
            var panels = [Float](repeating: 0, count: k * n)
            adk_pack_panels(weights, Int64(k), Int64(n), &panels)
            for rows in Array(1...30) + [53, 100] {
                let lda = k + 3, ldc = n + 5
                let a = Self.matrix(rows * lda, seed: rows)
                var c = [Float](repeating: .nan, count: rows * ldc)
                adk_panel_gemm(isa, Int64(rows), Int64(k), Int64(n), a, Int64(lda), panels, &c, Int64(ldc))
                var worst: Double = 0
                for row in 0..<rows {
                    for column in 0..<n {
                        var expected: Double = 0
                        for i in 0..<k { expected += Double(a[row * lda + i]) * Double(weights[i * n + column]) }
                        worst = max(worst, abs(expected - Double(c[row * ldc + column])))
                    }
                    // Columns past n belong to the caller: left as they were.
                    let untouched = c[row * ldc + n ..< row * ldc + ldc].allSatisfy { $0.isNaN }
                    #expect(untouched, "\(path): row \(row) written past n")
                }
                #expect(worst < 1e-4, "\(path): \(rows) × \(n) × \(k) off by \(worst)")
            }
        }
    }

    @Test("unpacking gives back the packed matrix")
    func unpackInvertsPack() throws {
        let width = Int(adk_panel_width())
        let (k, n) = (19, 4 * width)
        let weights = Self.matrix(k * n, seed: 3)
        var panels = [Float](repeating: 0, count: k * n)
        adk_pack_panels(weights, Int64(k), Int64(n), &panels)
        let unpacked = try #require(adk_unpack_panels(panels, Int64(k), Int64(n)))
        #expect(Array(UnsafeBufferPointer(start: unpacked, count: k * n)) == weights)
    }
}
