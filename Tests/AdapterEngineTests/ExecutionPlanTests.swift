@testable import AdapterEngine
import AdapterdTestSupport
import Foundation
import Testing

/// Every kernel path the test machine supports, in both precisions, against PyTorch+PEFT's outputs and FP32's.
@Suite("ExecutionPlan")
struct ExecutionPlanTests {
    /// Engines per (precision, path), built once: preparing the layers copies the base weights.
    static let engines: [String: InferenceEngine] = {
        var engines: [String: InferenceEngine] = [:]
        for precision in Precision.allCases {
            for path in KernelPath.supported where precision != .bf16 || InferenceEngine.runsBF16(path: path) {
                engines["\(precision)/\(path)"] = InferenceEngine(model: Fixtures.model, precision: precision, path: path)
            }
        }
        return engines
    }()

    static func engine(_ precision: Precision, _ path: KernelPath) -> InferenceEngine {
        engines["\(precision)/\(path)"]!
    }

    /// INT8 engines without the FP32 re-check of near ties: the raw INT8 outputs, per path.
    static let uncheckedEngines: [String: InferenceEngine] = {
        var engines: [String: InferenceEngine] = [:]
        for path in KernelPath.supported {
            engines["\(path)"] = InferenceEngine(model: Fixtures.model, precision: .int8, path: path, labelCheckFactor: 0)
        }
        return engines
    }()

    static func cosine(_ a: [Float], _ b: [Float]) -> Float {
        var dot: Float = 0, na: Float = 0, nb: Float = 0
        for (x, y) in zip(a, b) { dot += x * y; na += x * x; nb += y * y }
        return dot / (na.squareRoot() * nb.squareRoot())
    }

    @Test("the detected path matches the CPU flags the kernel reports")
    func detectedPathMatchesCPUFlags() throws {
        let cpuinfo = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        let line = try #require(cpuinfo.split(separator: "\n").first { $0.hasPrefix("flags") })
        let flags = Set(line.split(separator: " ").map(String.init))
        let expected: KernelPath
        if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8"]) {
            expected = .amx
        } else if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni", "avx512_bf16"]) {
            expected = .avx512BF16
        } else if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni"]) {
            expected = .avx512VNNI
        } else if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512dq", "avx512vl"]) {
            expected = .avx512
        } else if flags.isSuperset(of: ["avx2", "fma", "avx_vnni"]) {
            expected = .avx2VNNI
        } else if flags.isSuperset(of: ["avx2", "fma"]) {
            expected = .avx2
        } else {
            expected = .portable
        }
        #expect(KernelPath.detected == expected)
        #expect(KernelPath.supported.first == .portable && KernelPath.supported.last == expected)
    }

    @Test("a path above the CPU's is lowered to the CPU's")
    func unsupportedPathIsLowered() {
        let engine = InferenceEngine(model: Fixtures.model, precision: .fp32, path: KernelPath.allCases.last!)
        #expect(engine.path == KernelPath.detected)
    }

    @Test("path names round-trip", arguments: KernelPath.allCases)
    func namesRoundTrip(path: KernelPath) {
        #expect(KernelPath(name: path.description) == path)
    }

    @Test("FP32 on every supported path matches PyTorch+PEFT within 1e-4", arguments: KernelPath.supported)
    func fp32MatchesReferenceOnEveryPath(path: KernelPath) throws {
        let engine = Self.engine(.fp32, path)
        for reference in Fixtures.cases.adapters {
            let adapter = try Fixtures.adapter(reference.name)
            let tolerance: Float = reference.name.contains("fp16") ? 1e-3 : 1e-4
            let results = engine.run(reference.cases.map(\.text), adapter: adapter)
            for (expected, result) in zip(reference.cases, results) {
                let logits = try #require(result.output.logits)
                #expect(Fixtures.maxAbsDiff(logits, expected.logits) < tolerance, "\(path) \(reference.name): \(expected.text)")
                #expect(result.output.label == expected.label)
            }
        }
        for reference in Fixtures.cases.embeddings {
            let embedding = try #require(engine.run([reference.text], adapter: nil).first?.output.embedding)
            #expect(Fixtures.maxAbsDiff(embedding, reference.embedding) < 1e-4, "\(path): \(reference.text)")
        }
    }

    /// FP32's top-two logit margin: below a few hundredths, any quantisation can flip the label (the reference
    /// set's random adapters have margins down to 0.002).
    static func margin(_ logits: [Float]) -> Float {
        let sorted = logits.sorted(by: >)
        return sorted.count > 1 ? sorted[0] - sorted[1] : .infinity
    }

    /// The decided cases: FP32's margin is more than twice the largest INT8 logit error seen on the fixtures.
    static let decidedMargin: Float = 0.5

    @Test("INT8 gives FP32's label on every reference case, near ties included, on every supported path", arguments: KernelPath.supported)
    func int8KeepsEveryReferenceLabel(path: KernelPath) throws {
        let fp32 = Self.engine(.fp32, path), int8 = Self.engine(.int8, path)
        for reference in Fixtures.cases.adapters {
            let adapter = try Fixtures.adapter(reference.name)
            let texts = reference.cases.map(\.text)
            for (text, (a, b)) in zip(texts, zip(fp32.run(texts, adapter: adapter), int8.run(texts, adapter: adapter))) {
                #expect(a.output.label == b.output.label, "\(path) \(reference.name): \(text)")
            }
        }
    }

    @Test("raw INT8 logits move by less than the label check's factor times each adapter's calibrated error on every supported path", arguments: KernelPath.supported)
    func int8LogitErrorIsWithinTheCheck(path: KernelPath) throws {
        let fp32 = Self.engine(.fp32, path), checked = Self.engine(.int8, path), raw = try #require(Self.uncheckedEngines["\(path)"])
        for reference in Fixtures.cases.adapters {
            let adapter = try Fixtures.adapter(reference.name)
            let calibrated = try #require(checked.calibrateLabelCheck(adapter))
            let texts = reference.cases.map(\.text)
            var worst: Float = 0
            for (a, b) in zip(fp32.run(texts, adapter: adapter), raw.run(texts, adapter: adapter)) {
                worst = max(worst, LabelCheck.error(try #require(b.output.logits), exact: try #require(a.output.logits), problem: .singleLabel))
            }
            // The check's guarantee rests on this: a label can differ only where INT8 moved a difference of two
            // logits by more than the row's distance to the decision, and rows closer than factor × the calibrated
            // error are answered in FP32.
            #expect(worst < checked.labelCheckFactor * calibrated, "\(path) \(reference.name): error \(worst), calibrated \(calibrated)")
        }
    }

    @Test("INT8 answers rows near a decision from an exact FP32 pass and the others from INT8 alone")
    func int8RechecksOnlyRowsNearADecision() throws {
        let fp32 = Self.engine(.fp32, .detected)
        let checked = InferenceEngine(model: Fixtures.model, precision: .int8)
        let raw = try #require(Self.uncheckedEngines["\(KernelPath.detected)"])
        var answeredInFP32 = 0, answeredInBF16 = 0, kept = 0
        for reference in Fixtures.cases.adapters {
            let adapter = try Fixtures.adapter(reference.name)
            let texts = reference.cases.map(\.text)
            let threshold = checked.labelCheckFactor * (try #require(checked.calibrateLabelCheck(adapter)))
            let rows = zip(fp32.run(texts, adapter: adapter), zip(raw.run(texts, adapter: adapter), checked.run(texts, adapter: adapter)))
            for (text, (exact, (quantized, answer))) in zip(texts, rows) {
                let answerLogits = try #require(answer.output.logits)
                switch answer.labelCheck {
                case .kept:
                    kept += 1
                    #expect(answerLogits == quantized.output.logits, "\(reference.name): \(text)")
                    #expect(try #require(LabelCheck.distance(of: answerLogits, problem: .singleLabel)) >= threshold, "\(reference.name): \(text)")
                case .rechecked(.fp32), .routed(.fp32):
                    answeredInFP32 += 1
                    #expect(Fixtures.maxAbsDiff(answerLogits, try #require(exact.output.logits)) < 1e-4, "\(reference.name): \(text)")
                case .rechecked, .routed:
                    // A BF16 pass answered: far enough from a decision for BF16's own calibrated error.
                    answeredInBF16 += 1
                    let bf16 = try #require(checked.labelCheckFigures(for: adapter)?.passes.last { $0.precision == .bf16 })
                    #expect(try #require(LabelCheck.distance(of: answerLogits, problem: .singleLabel)) >= checked.labelCheckFactor * bf16.calibratedError)
                    #expect(answer.output.label == exact.output.label, "\(reference.name): \(text)")
                case .unchecked:
                    Issue.record("\(reference.name): a classification row went unchecked")
                }
            }
        }
        #expect(answeredInFP32 + answeredInBF16 > 0 && kept > 0, "the reference set has rows near a decision (random adapters) and far from one")
        #expect(checked.labelRechecks == answeredInFP32 + answeredInBF16)
        #expect(InferenceEngine.runsBF16(path: .detected) || answeredInBF16 == 0, "BF16 answers only where the CPU has it")
        #expect(raw.labelRechecks == 0 && raw.labelCheckFactor == 0)
        #expect(InferenceEngine(model: Fixtures.model, precision: .fp32).labelCheckFactor == 0)
    }

    @Test("INT8 gives FP32's label on every PEFT-semantics case", arguments: PEFTSemanticsTests.cases.adapters.map(\.name))
    func int8KeepsPEFTSemanticsLabels(name: String) throws {
        let reference = try #require(PEFTSemanticsTests.cases.adapters.first { $0.name == name })
        let adapter = try PEFTSemanticsTests.adapter(name)
        let texts = reference.cases.map(\.text)
        let fp32 = Self.engine(.fp32, .detected).run(texts, adapter: adapter)
        let int8 = Self.engine(.int8, .detected).run(texts, adapter: adapter)
        for (text, (a, b)) in zip(texts, zip(fp32, int8)) {
            #expect(a.output.label == b.output.label, "\(name): \(text)")
        }
    }

    @Test("INT8 sentence embeddings keep cosine ≥ 0.995 to FP32's on every supported path", arguments: KernelPath.supported)
    func int8EmbeddingsStayClose(path: KernelPath) throws {
        let texts = Fixtures.cases.embeddings.map(\.text) + Fixtures.cases.tokenizer.map(\.text)
        let fp32 = Self.engine(.fp32, path).run(texts, adapter: nil)
        let int8 = Self.engine(.int8, path).run(texts, adapter: nil)
        for (text, (a, b)) in zip(texts, zip(fp32, int8)) {
            let cosine = Self.cosine(try #require(a.output.embedding), try #require(b.output.embedding))
            #expect(cosine >= 0.995, "\(path): cosine \(cosine) for \(text)")
        }
    }

    @Test("an INT8 mixed batch gives the same rows as one-by-one INT8 runs")
    func int8MixedBatchMatchesSingleRuns() throws {
        let engine = Self.engine(.int8, .detected)
        let adapters: [LoRAAdapter?] = try Fixtures.cases.adapters.map { try Fixtures.adapter($0.name) } + [nil]
        let texts = Fixtures.cases.tokenizer.map(\.text)
        let batch = texts.enumerated().map { index, text in (text: text, adapter: adapters[index % adapters.count]) }
        for (request, mixed) in zip(batch, engine.run(batch)) {
            let single = try #require(engine.run([request]).first)
            switch (mixed.output, single.output) {
            case let (.classification(a, _, labelA), .classification(b, _, labelB)):
                // Rows are quantised on their own, so only FP32 rounding in the LoRA products differs, which can
                // move a value across a quantisation step.
                #expect(Fixtures.maxAbsDiff(a, b) < 0.05)
                #expect(labelA == labelB || Self.margin(a) < Self.decidedMargin)
            case let (.embedding(a), .embedding(b)):
                #expect(Self.cosine(a, b) > 0.999)
            default:
                Issue.record("output kinds differ for \(request.text)")
            }
        }
    }

    @Test(
        "an FP32 batch past the panel GEMM's rows (oneDNN on unpacked weights) gives the single-run outputs",
        arguments: KernelPath.supported)
    func largeFP32BatchMatchesSingleRuns(path: KernelPath) throws {
        let engine = Self.engine(.fp32, path)
        let adapter = try Fixtures.adapter("intent")
        let texts = Fixtures.cases.tokenizer.map(\.text)
        let rows = PreparedLinear.panelGEMMRows(isa: path.kernelISA) + 50
        var inputs: [EncodedInput] = []
        while inputs.reduce(0, { $0 + $1.ids.count }) < rows {
            inputs.append(EncodedInput(ids: engine.encode(texts[inputs.count % texts.count]).ids, adapter: adapter))
        }
        let batch = try engine.run(encoded: inputs)
        for (input, output) in zip(inputs, batch).prefix(texts.count) {
            let single = try #require(try engine.run(encoded: [input]).first)
            let (a, b) = (try #require(output.logits), try #require(single.logits))
            #expect(Fixtures.maxAbsDiff(a, b) < 1e-4)
        }
    }

    @Test(
        "adapters holding over a hundred rows of a batch each give the single-run outputs (their LoRA terms split across the team)",
        arguments: KernelPath.supported)
    func largeAdapterGroupsMatchSingleRuns(path: KernelPath) throws {
        let engine = Self.engine(.fp32, path)
        let adapters = try Fixtures.cases.adapters.map { try Fixtures.adapter($0.name) }
        let texts = Fixtures.cases.tokenizer.map { engine.encode($0.text).ids }
        // Every adapter gets well over 64 rows: more than one request, or one adapter's share of a mixed batch, brings.
        var inputs: [EncodedInput] = []
        for adapter in adapters {
            var rows = 0
            while rows < 150 {
                let ids = texts[inputs.count % texts.count]
                inputs.append(EncodedInput(ids: ids, adapter: adapter))
                rows += ids.count
            }
        }
        let batch = try engine.run(encoded: inputs)
        for (input, output) in zip(inputs, batch) {
            let single = try #require(try engine.run(encoded: [input]).first)
            let a = try #require(output.logits ?? output.embedding), b = try #require(single.logits ?? single.embedding)
            #expect(Fixtures.maxAbsDiff(a, b) < 1e-4, "\(input.adapter?.name ?? "base")")
        }
    }

    @Test(
        "a pass on the calling thread alone gives the team's outputs, in every precision the CPU runs",
        arguments: Precision.allCases.filter { $0 != .bf16 || InferenceEngine.runsBF16(path: .detected) })
    func callingThreadMatchesTeam(precision: Precision) throws {
        // The background smoke inference runs without the team, which takes the kernels' one-thread branches (in
        // INT8, the query/value LoRA terms after the dequantisation instead of beside it). INT8 without the label
        // check: with it, either pass may answer a row near a decision in FP32.
        let engine = switch precision {
        case .int8: try #require(Self.uncheckedEngines["\(KernelPath.detected)"])
        case .bf16: InferenceEngine(model: Fixtures.model, precision: .bf16, labelCheckFactor: 0)
        case .fp32: Self.engine(.fp32, .detected)
        }
        for adapterCase in Fixtures.cases.adapters {
            let adapter = try Fixtures.adapter(adapterCase.name)
            for text in adapterCase.cases.map(\.text).prefix(4) {
                let input = EncodedInput(ids: engine.encode(text).ids, adapter: adapter)
                let team = try #require(try engine.run(encoded: [input]).first)
                let alone = try #require(try engine.runOnCallingThread(encoded: [input]).first)
                let (a, b) = (team.logits ?? team.embedding ?? [], alone.logits ?? alone.embedding ?? [])
                #expect(!a.isEmpty && a.count == b.count)
                #expect(Fixtures.maxAbsDiff(a, b) < 1e-4, "\(adapterCase.name), \(precision): '\(text)'")
            }
        }
    }

    @Test("merged mode runs in INT8 with the unmerged INT8 labels", arguments: Fixtures.cases.adapters.map(\.name))
    func mergedRunsInInt8(name: String) throws {
        let adapter = try Fixtures.adapter(name)
        let texts = try #require(Fixtures.cases.adapters.first { $0.name == name }).cases.map(\.text)
        let merged = MergedModel(base: Fixtures.model, adapter: adapter, precision: .int8)
        #expect(merged.engine.precision == .int8)
        let unmerged = Self.engine(.int8, .detected).run(texts, adapter: adapter)
        for (a, b) in zip(merged.run(texts), unmerged) {
            let logits = try #require(b.output.logits)
            #expect(a.output.label == b.output.label || Self.margin(logits) < Self.decidedMargin)
            #expect(Fixtures.maxAbsDiff(try #require(a.output.logits), logits) < 0.5)
        }
    }

    @Test("INT8 prepared layers take about a quarter of FP32's bytes")
    func int8IsSmaller() {
        let fp32 = Self.engine(.fp32, .detected).plan.bytes
        let int8 = Self.engine(.int8, .detected).plan.bytes
        #expect(Double(int8) < Double(fp32) * 0.27, "fp32 \(fp32) B, int8 \(int8) B")
    }
}
