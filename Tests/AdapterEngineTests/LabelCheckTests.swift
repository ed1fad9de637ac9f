@testable import AdapterEngine
import Foundation
import Testing

/// INT8's label check: margins scaled by each adapter's own measured error, and a cost no input can blow up.
@Suite("LabelCheck")
struct LabelCheckTests {
    static let fp32 = ExecutionPlanTests.engine(.fp32, .detected)

    /// Texts on and off the intent adapter's domain.
    static let texts = [
        "turn the lights off in the kitchen", "it is far too warm in here", "lock the front door", "switch on the lamp",
        "the quarterly report is due on friday", "my knee hurts when I climb stairs", "compressor 3 is vibrating",
        "what time is it", "set the heating to 21 degrees", "is the garage open",
    ]

    /// A copy of the intent adapter whose classifier weights and bias are multiplied by `scale` (the same labels
    /// on every input, logits `scale` times as far apart), and, with `problemType`, that `labels.json` field; a
    /// regression keeps the classifier's first output alone.
    static func intent(scaledBy scale: Float, problemType: String? = nil) throws -> LoRAAdapter {
        let labels = problemType == "regression" ? ["score"] : ["lights_on", "lights_off", "climate", "security"]
        let directory = try FileManagerCopy.copyAdapter("intent")
        let path = directory + "/adapter_model.safetensors"
        let file = try SafeTensorsFile(path: path)
        var writer = SafeTensorsWriter()
        for (name, info) in file.tensors.sorted(by: { $0.key < $1.key }) {
            var values = try file.tensor(info).storage.values, shape = info.shape
            if name.contains("classifier") {
                values = values.map { $0 * scale }
                if labels.count < shape[0] {
                    values = Array(values.prefix(values.count / shape[0] * labels.count))
                    shape[0] = labels.count
                }
            }
            writer.add(name, shape: shape, values: values)
        }
        try writer.data().write(to: URL(fileURLWithPath: path + ".new"))
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.moveItem(atPath: path + ".new", toPath: path)
        if let problemType {
            let list = labels.map { "\"\($0)\"" }.joined(separator: ", ")
            try FileManagerCopy.write(#"{"labels": [\#(list)], "problem_type": "\#(problemType)"}"#, to: directory + "/labels.json")
        }
        return try LoRAAdapter(directory: directory, model: Fixtures.model, name: "intent×\(scale)")
    }

    @Test("a head a hundred times larger gets a hundred times the margin: the same rows are re-checked and every label is FP32's")
    func marginScalesWithTheHead() throws {
        let engine = InferenceEngine(model: Fixtures.model, precision: .int8)
        let original = try Fixtures.adapter("intent"), scaled = try Self.intent(scaledBy: 100)
        let small = try #require(engine.calibrateLabelCheck(original)), large = try #require(engine.calibrateLabelCheck(scaled))
        #expect(abs(large / small - 100) < 1, "calibrated errors \(small) and \(large)")
        let a = engine.run(Self.texts, adapter: original), b = engine.run(Self.texts, adapter: scaled)
        let exact = Self.fp32.run(Self.texts, adapter: original)
        for (text, (x, (y, z))) in zip(Self.texts, zip(a, zip(b, exact))) {
            #expect(x.labelCheck.answeredIn == y.labelCheck.answeredIn, "\(text)")
            #expect(x.output.label == z.output.label && y.output.label == z.output.label, "\(text)")
        }
    }

    @Test("an adapter whose rows every pass leaves unsure is sent straight to FP32 on every batch, with FP32's logits")
    func mostlyUnsureAdapterRunsInFP32() throws {
        // An infinite factor puts every classification row within the margin: INT8 never answers one.
        let engine = InferenceEngine(model: Fixtures.model, precision: .int8, labelCheckFactor: .infinity)
        let adapter = try Fixtures.adapter("intent")
        let input = [EncodedInput(ids: engine.encode("switch on the lamp").ids, adapter: adapter)]
        let exact = try Self.fp32.run(encoded: input)[0]
        var outcomes: [LabelCheckOutcome] = []
        for _ in 0..<48 {
            let row = try engine.runChecked(encoded: input)[0]
            outcomes.append(row.outcome)
            #expect(Fixtures.maxAbsDiff(try #require(row.output.logits), try #require(exact.logits)) < 1e-4)
        }
        // The calibration found every row unsure in every pass, and each FP32 answer lies within every threshold, so
        // no batch runs a pass that cannot answer it.
        #expect(outcomes.allSatisfy { $0 == .routed(.fp32) }, "\(outcomes)")
        let figures = try #require(engine.labelCheckFigures(for: adapter))
        #expect(figures.rechecked == 0 && figures.routed == 48 && figures.passes.allSatisfy { $0.unsureRate == 1 })
    }

    @Test("an adapter sent to BF16 by batches INT8 was unsure of starts in INT8 again once its answers lie far from any decision")
    func answersMoveTheStartBack() {
        let check = AdapterLabelCheck()
        let costs = [0.3, 0.55, 1.0]
        check.calibrated(1, errors: [0.1, 0.01], rows: 12, unsure: [0, 0])
        // Batches of 32 with most rows unsure in INT8, few in BF16: BF16 is the cheaper start.
        for _ in 0..<8 { check.record(1, checked: [32, 32], unsure: [28, 1]) }
        #expect(check.startingPass(1, costs: costs) == 1)
        // Then one-row batches answered in BF16 far from any decision: INT8 would have been sure of each.
        var batches = 0
        while check.startingPass(1, costs: costs) == 1, batches < 1_000 {
            check.record(1, checked: [1, 1], unsure: [0, 0])
            batches += 1
        }
        // Every answer counts for INT8's rate, without an INT8 pass: about half the 64-row window.
        #expect(batches <= 40, "back to INT8 after \(batches) one-row batches")
        #expect(check.startingPass(1, costs: costs) == 0)
        // Two batches of 32 such rows are enough after batches of 32 unsure ones.
        for _ in 0..<8 { check.record(1, checked: [32, 32], unsure: [28, 1]) }
        check.record(1, checked: [32, 32], unsure: [0, 0])
        check.record(1, checked: [32, 32], unsure: [0, 0])
        #expect(check.startingPass(1, costs: costs) == 0)
    }

    @Test("rows started past INT8 whose answers lie far from INT8's threshold bring the adapter back to INT8 without an INT8 pass")
    func answersFarFromADecisionBringTheAdapterBack() throws {
        let engine = InferenceEngine(model: Fixtures.model, precision: .int8)
        let check = try #require(engine.labelCheck)
        let adapter = try Fixtures.adapter("intent")
        let threshold = check.factor * (try #require(engine.calibrateLabelCheck(adapter)))
        // Texts whose FP32 answer lies at least twice INT8's threshold from a decision.
        let reference = try #require(Fixtures.cases.adapters.first { $0.name == "intent" })
        let texts = reference.cases.map(\.text).filter { text in
            let logits = Self.fp32.run([text], adapter: adapter)[0].output.logits ?? []
            return (LabelCheck.distance(of: logits, problem: .singleLabel) ?? 0) > 2 * threshold
        }
        try #require(!texts.isEmpty)
        // Recent batches INT8 left entirely unsure: the next rows start one pass up.
        let passes = check.checkedPasses.count
        for _ in 0..<8 {
            adapter.labelCheck.record(check.id, checked: Array(repeating: 32, count: passes), unsure: [32] + Array(repeating: 0, count: passes - 1))
        }
        var outcomes: [LabelCheckOutcome] = []
        for index in 0..<200 {
            let outcome = engine.run([texts[index % texts.count]], adapter: adapter)[0].labelCheck
            outcomes.append(outcome)
            if outcome == .kept { break }
        }
        #expect(outcomes.first == .routed(check.passes[1].precision))
        #expect(outcomes.last == .kept, "\(outcomes)")
        // About 40 with the passes' usual costs (INT8 at half BF16's); timed costs on a busy machine may ask a little
        // more of the rate.
        #expect(outcomes.count <= 100, "\(outcomes.count) one-row batches before INT8 answered again")
    }

    @Test("a confident adapter's rows stay in INT8 and are never sent to FP32")
    func confidentAdapterStaysInINT8() throws {
        let engine = InferenceEngine(model: Fixtures.model, precision: .int8)
        let adapter = try Fixtures.adapter("intent")
        let input = [EncodedInput(ids: engine.encode("turn the lights off in the kitchen").ids, adapter: adapter)]
        for _ in 0..<20 { #expect(try engine.runChecked(encoded: input)[0].outcome == .kept) }
        #expect(engine.labelRechecks == 0)
    }

    @Test("a multi-label head is checked by each logit's distance from 0, and its labels are FP32's")
    func multiLabelRowsAreCheckedAtZero() throws {
        let engine = InferenceEngine(model: Fixtures.model, precision: .int8)
        let adapter = try Self.intent(scaledBy: 1, problemType: "multi_label_classification")
        let threshold = engine.labelCheckFactor * (try #require(engine.calibrateLabelCheck(adapter)))
        let head = try #require(adapter.head)
        for (text, (row, exact)) in zip(Self.texts, zip(engine.run(Self.texts, adapter: adapter), Self.fp32.run(Self.texts, adapter: adapter))) {
            let logits = try #require(row.output.logits)
            #expect(head.labelsOn(logits) == head.labelsOn(try #require(exact.output.logits)), "\(text)")
            if row.labelCheck == .kept { #expect(logits.allSatisfy { abs($0) >= threshold }, "\(text): \(logits)") }
        }
    }

    @Test(
        "a token classifier is checked token by token: INT8 gives FP32's label on every token, re-checking a row when any of its tokens lies near a tie",
        arguments: [("bert-cls", "bert-cls/entities"), ("modernbert", "modernbert/slots")])
    func tokenClassifiersAreCheckedPerToken(model modelName: String, adapter adapterName: String) throws {
        let model = try BertModel(directory: EncoderFamilyTests.zoo + "/models/" + modelName)
        let adapter = try LoRAAdapter(directory: EncoderFamilyTests.zoo + "/adapters/" + adapterName, model: model)
        let engine = InferenceEngine(model: model, precision: .int8)
        let threshold = engine.labelCheckFactor * (try #require(engine.calibrateLabelCheck(adapter), "a token classifier is calibrated"))
        let exact = InferenceEngine(model: model, precision: .fp32)
        // On and off the adapter's domain, with the encoder zoo's scripts.
        let texts = Self.texts + ["Café déjà vu — naïve façade", "北京 office lamp 开", "temp=21.5°C at 07:30; humidity 40%"]
        for (text, (row, reference)) in zip(texts, zip(engine.run(texts, adapter: adapter), exact.run(texts, adapter: adapter))) {
            guard case .tokenClassification(let logits, let labels) = row.output,
                  case .tokenClassification(_, let expected) = reference.output else {
                Issue.record("\(text): not a token classification")
                continue
            }
            #expect(labels == expected, "\(adapterName): \(text)")
            if row.labelCheck == .kept {
                #expect(logits.allSatisfy { (LabelCheck.distance(of: $0, problem: .singleLabel) ?? 0) >= threshold }, "\(text)")
            }
        }
    }

    @Test("embeddings and regression heads have no label to keep: INT8 answers them unchecked")
    func unlabelledOutputsAreUnchecked() throws {
        let engine = InferenceEngine(model: Fixtures.model, precision: .int8, labelCheckFactor: .infinity)
        let regression = try Self.intent(scaledBy: 1, problemType: "regression")
        #expect(engine.calibrateLabelCheck(regression) == nil)
        let rows = try engine.runChecked(encoded: [
            EncodedInput(ids: engine.encode("lock the door").ids, adapter: nil),
            EncodedInput(ids: engine.encode("lock the door").ids, adapter: regression),
        ])
        #expect(rows.allSatisfy { $0.outcome == .unchecked })
        #expect(engine.labelRechecks == 0)
    }
}
