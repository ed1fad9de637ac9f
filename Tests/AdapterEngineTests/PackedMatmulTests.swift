@testable import AdapterEngine
import AdapterdTestSupport
import Testing

/// oneDNN's packed INT8 and BF16 products (`PackedMatmul`) at every row count a batch may have, against exact sums.
@Suite("PackedMatmul")
struct PackedMatmulTests {
    @Test("padding adds no row up to 4, at most 3 up to 64, 7 up to 128 and 15 past; up to 512 rows meet 51 shapes")
    func paddingStaysSmall() {
        for rows in 1...2_048 {
            let padded = PackedMatmul.paddedRows(rows)
            let allowed = rows <= 4 ? 0 : rows <= 64 ? 3 : rows <= 128 ? 7 : 15
            #expect(padded >= rows && padded - rows <= allowed, "\(rows) rows padded to \(padded)")
        }
        #expect(Set((1...512).map(PackedMatmul.paddedRows)).count == 51)
    }

    /// Small integers, so that every product and sum is exact in int32 and in FP32 alike.
    static func values(_ count: Int, seed: Int) -> [Int] {
        (0..<count).map { ($0 &* 7919 &+ seed &* 104_729) % 9 - 4 }
    }

    static func exact(_ a: [Int], _ b: [Int], rows: Int, inputs: Int, outputs: Int) -> [Int] {
        var c = [Int](repeating: 0, count: rows * outputs)
        for row in 0..<rows {
            for column in 0..<outputs {
                for i in 0..<inputs { c[row * outputs + column] += a[row * inputs + i] * b[i * outputs + column] }
            }
        }
        return c
    }

    @Test("INT8 products of 1 to 70 rows (and 129) give the exact sums")
    func int8ProductsAreExact() {
        let inputs = 96, outputs = 48
        let b = Self.values(inputs * outputs, seed: 1)
        let weights = b.map { Int8($0) }.withUnsafeBufferPointer {
            PackedMatmul.int8.pack($0.baseAddress!, inputs: inputs, outputs: outputs)
        }
        for rows in Array(1...70) + [129] {
            // Shifted to 0…8: the activations are unsigned.
            let a = Self.values(inputs * rows, seed: rows).map { $0 + 4 }
            let padded = PackedMatmul.paddedRows(rows)
            let source = a.map { UInt8($0) } + [UInt8](repeating: 0, count: (padded - rows) * inputs)
            var c = [Int32](repeating: 0, count: padded * outputs)
            source.withUnsafeBufferPointer { s in
                c.withUnsafeMutableBufferPointer { PackedMatmul.int8.multiply(rows: rows, a: s.baseAddress!, weights: weights, c: $0.baseAddress!) }
            }
            let expected = Self.exact(a, b, rows: rows, inputs: inputs, outputs: outputs)
            #expect(c.prefix(rows * outputs).map(Int.init) == expected, "\(rows) rows")
        }
    }

    @Test(
        "BF16 products of 1 to 70 rows (and 129) give the exact sums where the CPU has BF16 dot products",
        .enabled(if: KernelPath.detected.hasBF16))
    func bf16ProductsAreExact() {
        let inputs = 96, outputs = 48
        let b = Self.values(inputs * outputs, seed: 2)
        // Small integers are bfloat16 values as they are: the upper half of their FP32 bits.
        func bf16(_ values: [Int]) -> [UInt16] { values.map { UInt16(Float($0).bitPattern >> 16) } }
        let weights = bf16(b).withUnsafeBufferPointer { PackedMatmul.bf16.pack($0.baseAddress!, inputs: inputs, outputs: outputs) }
        for rows in Array(1...70) + [129] {
            let a = Self.values(inputs * rows, seed: rows)
            let padded = PackedMatmul.paddedRows(rows)
            let source = bf16(a) + [UInt16](repeating: 0, count: (padded - rows) * inputs)
            var c = [Float](repeating: 0, count: padded * outputs)
            source.withUnsafeBufferPointer { s in
                c.withUnsafeMutableBufferPointer { PackedMatmul.bf16.multiply(rows: rows, a: s.baseAddress!, weights: weights, c: $0.baseAddress!) }
            }
            let expected = Self.exact(a, b, rows: rows, inputs: inputs, outputs: outputs)
            #expect(c.prefix(rows * outputs).map { Int($0) } == expected, "\(rows) rows")
        }
    }
}
