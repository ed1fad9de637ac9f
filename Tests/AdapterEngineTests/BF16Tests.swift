@testable import AdapterEngine
import CEngineKernels
import Testing

/// BF16 products: the conversion, the engine precision, and the label check's middle pass between INT8 and FP32.
@Suite("BF16")
struct BF16Tests {
    /// Whether this CPU runs BF16 products natively (the tests of BF16 engines need it).
    static let available = InferenceEngine.runsBF16(path: .detected)

    @Test("the AVX-512 BF16 conversion and the portable one give the same bits: ties to even, denormals to zero, NaN kept a NaN")
    func conversionsAgree() throws {
        var values: [Float] = [0, -0, 1, -1, 1.00390625, 1.01171875, 3.14159265, Float(bitPattern: 0x8001_2345), Float(bitPattern: 1), .infinity, -.infinity, .nan, .greatestFiniteMagnitude]
        var seed: UInt32 = 12345
        for _ in 0..<1000 {
            seed = seed &* 1_664_525 &+ 1_013_904_223
            values.append(Float(bitPattern: seed))
        }
        let count = values.count
        var native = [UInt16](repeating: 0, count: count), portable = [UInt16](repeating: 0, count: count)
        adk_convert_bf16(1, values, Int64(count), 1, Int64(count), &native, Int64(count))
        adk_convert_bf16(0, values, Int64(count), 1, Int64(count), &portable, Int64(count))
        for (index, value) in values.enumerated() {
            if value.isNaN {
                #expect(native[index] & 0x7f80 == 0x7f80 && native[index] & 0x7f != 0 && portable[index] & 0x7f != 0)
            } else {
                #expect(native[index] == portable[index], "\(value): \(native[index]) and \(portable[index])")
            }
        }
        // 1 + 2⁻⁸ lies halfway between two bfloat16 values and rounds to the even one, 1.0.
        #expect(portable[4] == 0x3F80 && portable[5] == 0x3F82)
    }

    @Test("a BF16 engine keeps every reference label and moves logits by a fraction of INT8's error", .enabled(if: available))
    func bf16KeepsReferenceLabels() throws {
        let fp32 = ExecutionPlanTests.engine(.fp32, .detected)
        let bf16 = InferenceEngine(model: Fixtures.model, precision: .bf16, labelCheckFactor: 0)
        for reference in Fixtures.cases.adapters {
            let adapter = try Fixtures.adapter(reference.name)
            let texts = reference.cases.map(\.text)
            for (text, (exact, row)) in zip(texts, zip(fp32.run(texts, adapter: adapter), bf16.run(texts, adapter: adapter))) {
                let error = LabelCheck.error(try #require(row.output.logits), exact: try #require(exact.output.logits), problem: .singleLabel)
                #expect(error < 0.06, "\(reference.name): \(text)")
            }
        }
        let texts = LabelCheckTests.texts
        for (exact, row) in zip(fp32.run(texts, adapter: nil), bf16.run(texts, adapter: nil)) {
            guard case .embedding(let a) = exact.output, case .embedding(let b) = row.output else { throw BF16TestError.notAnEmbedding }
            #expect(ExecutionPlanTests.cosine(a, b) >= 0.9995)
        }
    }

    @Test("INT8's unsure rows are answered in BF16 where the CPU has it, and in FP32 only where BF16 is unsure too", .enabled(if: available))
    func int8UnsureRowsAreAnsweredInBF16() throws {
        let fp32 = ExecutionPlanTests.engine(.fp32, .detected)
        let engine = InferenceEngine(model: Fixtures.model, precision: .int8)
        // Its logits lie within a few hundredths of each other on every text: INT8 is unsure of every row.
        let adapter = try Fixtures.adapter("rand-r16-fp16")
        let texts = LabelCheckTests.texts + Fixtures.cases.adapters.flatMap { $0.cases.map(\.text) }
        let rows = engine.run(texts, adapter: adapter)
        let figures = try #require(engine.labelCheckFigures(for: adapter))
        #expect(figures.passes.map(\.precision) == [.int8, .bf16])
        let bf16Margin = engine.labelCheckFactor * figures.passes[1].calibratedError
        var inBF16 = 0
        for (text, (row, exact)) in zip(texts, zip(rows, fp32.run(texts, adapter: adapter))) {
            #expect(row.output.label == exact.output.label, "\(text)")
            #expect(row.labelCheck.answeredByRecheck, "\(text): \(row.labelCheck)")
            if row.labelCheck.answeredIn == .bf16 {
                inBF16 += 1
                let logits = try #require(row.output.logits)
                #expect((LabelCheck.distance(of: logits, problem: .singleLabel) ?? 0) >= bf16Margin, "\(text)")
            } else {
                #expect(Fixtures.maxAbsDiff(try #require(row.output.logits), try #require(exact.output.logits)) < 1e-4, "\(text)")
            }
        }
        #expect(inBF16 * 2 > texts.count, "most rows are far enough from a decision for BF16: \(inBF16) of \(texts.count)")
    }

    @Test("each adapter's rows start at the pass with the lowest expected cost, re-checks included")
    func cheapestStartWeighsTheRates() {
        let costs = [0.3, 0.55, 1.0]
        #expect(LabelCheck.cheapestStart(costs: costs, unsure: [0.05, 0.01]) == 0)
        // INT8 leaves most rows unsure, BF16 few: start in BF16.
        #expect(LabelCheck.cheapestStart(costs: costs, unsure: [0.9, 0.05]) == 1)
        // Every pass leaves every row unsure: FP32 alone.
        #expect(LabelCheck.cheapestStart(costs: costs, unsure: [1, 1]) == 2)
        // INT8 and FP32 only: INT8 pays while fewer rows than 1 − 0.3 are re-run.
        #expect(LabelCheck.cheapestStart(costs: [0.3, 1.0], unsure: [0.6]) == 0)
        #expect(LabelCheck.cheapestStart(costs: [0.3, 1.0], unsure: [0.8]) == 1)
    }
}

private enum BF16TestError: Error {
    case notAnEmbedding
}
