@testable import AdapterEngine
import AdapterdTestSupport
import Testing

/// The forward pass's last layer on only the rows the outputs read (`ForwardPass.readRows`).
@Suite("ForwardPass")
struct ForwardPassTests {
    static let texts = ["ok", "the fan in hall two stopped at noon and the temperature keeps rising", "reset my password please"]

    @Test("the last layer keeps each sequence classifier's first row, and every row when an output pools them all")
    func readRowsAreTheOutputsRows() throws {
        let engine = Fixtures.engine
        let intent = try Fixtures.adapter("intent")
        let pass = ForwardPass(weights: engine.model.weights, config: engine.model.config, plan: engine.plan)
        let inputs = Self.texts.map { engine.encode($0) }
        let offsets = inputs.indices.map { index in inputs.prefix(index).reduce(0) { $0 + $1.ids.count } }
        let rows = offsets.last! + inputs.last!.ids.count
        let classified = [ForwardPass.Group(adapter: intent, sequences: 0..<3, rows: 0..<rows)]
        let sequences = inputs.map { EncodedInput(ids: $0.ids, adapter: intent) }
        #expect(pass.readRows(groups: classified, sequences: sequences, offsets: offsets) == offsets)
        // MiniLM's sentence embedding is the mean of every row.
        let embedded = [
            ForwardPass.Group(adapter: nil, sequences: 0..<1, rows: 0..<offsets[1]),
            ForwardPass.Group(adapter: intent, sequences: 1..<3, rows: offsets[1]..<rows),
        ]
        #expect(pass.readRows(groups: embedded, sequences: sequences, offsets: offsets) == nil)
    }

    @Test(
        "classifier rows give the same logits on the outputs' rows alone as beside a mean-pooled embedding, which keeps every row",
        arguments: Precision.allCases)
    func keptRowsGiveTheFullPassLogits(precision: Precision) throws {
        let path = KernelPath.detected
        guard precision != .bf16 || InferenceEngine.runsBF16(path: path) else { return }
        let engine = InferenceEngine(model: Fixtures.model, precision: precision, path: path, labelCheckFactor: 0)
        let intent = try Fixtures.adapter("intent")
        let alone = engine.run(Self.texts.map { ($0, intent) })
        let beside = engine.run(Self.texts.map { ($0, intent) } + [(Self.texts[1], nil)])
        // FP32 rows are computed exactly as before; INT8 and BF16 products of other row counts may round one value
        // differently, so a value can move by a quantisation step.
        let tolerance: Float = precision == .fp32 ? 1e-5 : 0.05
        for (index, (one, other)) in zip(alone, beside).enumerated() {
            let a = try #require(one.output.logits), b = try #require(other.output.logits)
            #expect(Fixtures.maxAbsDiff(a, b) < tolerance, "\(precision): \(Self.texts[index])")
            #expect(one.output.label == other.output.label)
        }
        #expect(beside.last?.output.embedding != nil)
    }
}
