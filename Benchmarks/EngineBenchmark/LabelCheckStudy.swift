// `--label-check DIR [--texts FILE.jsonl]`: what INT8's label check does for each adapter under DIR (the shared
// reference adapters, say): how its INT8 error on other texts compares with the error measured on the calibration
// texts, how many rows it re-checks and how many labels INT8 alone would have changed, and what INT8 costs with the
// check on against FP32, on the benchmark's synthetic ids (off every adapter's domain) and in the worst case (every
// row re-checked).
import AdapterEngine
import Foundation

struct LabelCheckStudy {
    let fp32: InferenceEngine
    let int8: InferenceEngine
    let unchecked: InferenceEngine
    /// BF16 without a check, where the CPU has it: how far the check's middle pass strays on the texts.
    let bf16: InferenceEngine?
    let worst: InferenceEngine
    let texts: [[Int32]]

    init(model: BertModel, path: KernelPath, texts: [String]) {
        let fp32 = InferenceEngine(model: model, precision: .fp32, path: path)
        self.fp32 = fp32
        int8 = InferenceEngine(model: model, precision: .int8, path: path)
        unchecked = InferenceEngine(model: model, precision: .int8, path: path, labelCheckFactor: 0)
        bf16 = InferenceEngine.runsBF16(path: path) ? InferenceEngine(model: model, precision: .bf16, path: path, labelCheckFactor: 0) : nil
        // Every classification row lies within an infinite margin of a decision: each is re-checked.
        worst = InferenceEngine(model: model, precision: .int8, path: path, labelCheckFactor: .infinity)
        self.texts = texts.map { fp32.encode($0).ids }
    }

    /// Accuracy: the calibrated error against the largest error on `texts`, rows re-checked, labels changed.
    func accuracy(_ name: String, _ directory: String) throws {
        let adapter = try LoRAAdapter(directory: directory, model: fp32.model)
        guard let head = adapter.head else { return }
        let calibrated = int8.calibrateLabelCheck(adapter) ?? 0
        let passes = int8.labelCheckFigures(for: adapter)?.passes ?? []
        let inputs = texts.map { EncodedInput(ids: $0, adapter: adapter) }
        let exact = try fp32.run(encoded: inputs), raw = try unchecked.run(encoded: inputs)
        let checked = try int8.runChecked(encoded: inputs)
        var largest: Float = 0
        for (a, b) in zip(raw, exact) {
            largest = max(largest, error(a.logits ?? [], b.logits ?? [], multi: head.problemType == .multiLabel))
        }
        let changedRaw = zip(raw, exact).count(where: { $0.label != $1.label })
        let changedChecked = zip(checked, exact).count(where: { $0.output.label != $1.label })
        let answered = checked.count(where: \.outcome.answeredByRecheck)
        let inFP32 = checked.count(where: { $0.outcome.answeredIn == .fp32 })
        let errors = passes.map { "\($0.precision) \(String(format: "%.4f", $0.calibratedError))" }.joined(separator: ", ")
        line(String(format: "%@: INT8 error %.4f on the calibration texts (%@), %.4f at most on %d texts (%.2f×); %d rows of %d re-checked, %d of them answered in FP32; labels changed without the check %d, with it %d",
                     name, calibrated, errors, largest, texts.count, largest / max(calibrated, 1e-9), answered, texts.count, inFP32, changedRaw, changedChecked))
        report("label_check_fp32_only_rows_\(name)", Double(inFP32) / Double(texts.count), "share")
        if let bf16, let calibratedBF16 = passes.first(where: { $0.precision == .bf16 })?.calibratedError {
            let middle = try bf16.run(encoded: inputs)
            let largestBF16 = zip(middle, exact).map { error($0.logits ?? [], $1.logits ?? [], multi: head.problemType == .multiLabel) }.max() ?? 0
            let changed = zip(middle, exact).count(where: { $0.label != $1.label })
            line(String(format: "%@: BF16 error %.4f on the calibration texts, %.4f at most on the texts (%.2f×); labels BF16 alone changed %d",
                         name, calibratedBF16, largestBF16, largestBF16 / max(calibratedBF16, 1e-9), changed))
            report("label_check_bf16_error_ratio_\(name)", Double(largestBF16 / max(calibratedBF16, 1e-9)), "ratio")
        }
        report("label_check_error_ratio_\(name)", Double(largest / max(calibrated, 1e-9)), "ratio")
        report("label_check_fp32_rows_\(name)", Double(answered) / Double(texts.count), "share")
        report("label_check_labels_changed_\(name)", Double(changedChecked), "rows")
    }

    private func error(_ a: [Float], _ b: [Float], multi: Bool) -> Float {
        let changes = zip(a, b).map { $0 - $1 }
        guard let low = changes.min(), let high = changes.max() else { return 0 }
        return multi ? max(abs(low), abs(high)) : high - low
    }

    /// Cost, interleaved by round: each adapter over the base pass in FP32 and in INT8 without the check (the
    /// issue's table), and INT8 with the check (default, and every row re-checked) over FP32 with the adapter. The
    /// checked engines' figures are means over many batches, so that batches that start in another pass are counted.
    func cost(_ names: [String], _ directory: String, rounds: Int) throws {
        let adapters = try names.map { try LoRAAdapter(directory: directory + "/" + $0, model: fp32.model) }
        for batch in [1, 32] {
            let iterations = batch == 1 ? 48 : 16
            var ratios: [String: [Double]] = [:]
            for _ in 0..<rounds {
                func time(_ engine: InferenceEngine, _ adapter: LoRAAdapter?) throws -> Double {
                    let inputs = (0..<batch).map { EncodedInput(ids: tokens(16, seed: $0), adapter: adapter) }
                    for _ in 0..<2 { _ = try engine.run(encoded: inputs) }
                    let clock = ContinuousClock()
                    let elapsed = try clock.measure { for _ in 0..<iterations { _ = try engine.run(encoded: inputs) } }
                    return (Double(elapsed.components.seconds) * 1e3 + Double(elapsed.components.attoseconds) / 1e15) / Double(iterations)
                }
                let fp32Base = try time(fp32, nil), int8Base = try time(unchecked, nil)
                for (name, adapter) in zip(names, adapters) {
                    let f = try time(fp32, adapter), u = try time(unchecked, adapter)
                    let c = try time(int8, adapter), w = try time(worst, adapter)
                    ratios["fp32_\(name)_vs_base", default: []].append(f / fp32Base)
                    ratios["int8_\(name)_vs_base", default: []].append(u / int8Base)
                    ratios["int8_checked_\(name)_vs_fp32", default: []].append(c / f)
                    ratios["int8_all_rechecked_\(name)_vs_fp32", default: []].append(w / f)
                }
            }
            for (name, adapter) in zip(names, adapters) {
                for (engine, kind) in [(int8, "default"), (worst, "every row re-checked")] {
                    let figures = engine.labelCheckFigures(for: adapter)
                    line("b\(batch) \(name), \(kind): \(figures?.rechecked ?? 0) rows re-checked, \(figures?.routed ?? 0) sent to a more exact pass directly")
                }
            }
            for (key, values) in ratios.sorted(by: { $0.key < $1.key }) {
                let median = values.sorted()[values.count / 2]
                line(String(format: "b%d × 16 %@: %.3f×", batch, key, median))
                report("\(key)_b\(batch)_t16", median, "ratio")
            }
        }
    }

    private func line(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
}
