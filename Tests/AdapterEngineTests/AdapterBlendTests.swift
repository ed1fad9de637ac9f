import AdapterEngine
import Foundation
import Testing

/// Weighted blends against what PyTorch computes for `Σ wᵢ·ΔWᵢ` with the heads blended by the same weights
/// (`Fixtures/blends/blends.json`, made by scripts/make-blend-reference, which also checks the LoRA-only blend
/// against PEFT's `add_weighted_adapter(…, "cat")`).
@Suite("Adapter blends")
struct AdapterBlendTests {
    static let directory = Fixtures.root + "/Tests/AdapterEngineTests/Fixtures/blends"

    struct Reference: Decodable {
        struct Part: Decodable {
            let adapter: String
            let weight: Float
        }

        struct Case: Decodable {
            let text: String
            let logits: [Float]
            let label: String
        }

        struct Blend: Decodable {
            let name: String
            let parts: [Part]
            let cases: [Case]
        }

        let tolerance: Float
        let blends: [Blend]

        static let shared: Reference = {
            try! JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: directory + "/blends.json")))
        }()
    }

    static func blend(_ reference: Reference.Blend) throws -> LoRAAdapter {
        let parts = try reference.parts.map { part in
            (adapter: try LoRAAdapter(directory: directory + "/" + part.adapter, model: Fixtures.model), weight: part.weight)
        }
        return try LoRAAdapter.blend(parts, name: reference.name)
    }

    @Test(
        "LoRA with rsLoRA, three methods, and task arithmetic with a negative weight match PyTorch's blend on every kernel path",
        arguments: ["lora-pair", "three-methods", "task-arithmetic"], KernelPath.supported)
    func blendsMatchPyTorch(name: String, path: KernelPath) throws {
        let reference = try #require(Reference.shared.blends.first { $0.name == name })
        let results = InferenceEngine(model: Fixtures.model, path: path).run(reference.cases.map(\.text), adapter: try Self.blend(reference))
        for (expected, result) in zip(reference.cases, results) {
            #expect(Fixtures.maxAbsDiff(try #require(result.output.logits), expected.logits) < Reference.shared.tolerance, "\(name): \(expected.text)")
            #expect(result.output.label == expected.label, "\(name): \(expected.text)")
        }
    }

    @Test("a blend is one adapter in a batch: its rows beside its parts' rows each get their own result; merged matches")
    func blendInMixedBatch() throws {
        let reference = try #require(Reference.shared.blends.first { $0.name == "three-methods" })
        let blend = try Self.blend(reference)
        let part = try LoRAAdapter(directory: Self.directory + "/lora-qv", model: Fixtures.model)
        let engine = InferenceEngine(model: Fixtures.model)
        let alone = engine.run(reference.cases.map(\.text), adapter: part)
        let mixed = engine.run(reference.cases.flatMap { [($0.text, blend), ($0.text, part)] })
        for (index, expected) in reference.cases.enumerated() {
            #expect(Fixtures.maxAbsDiff(try #require(mixed[2 * index].output.logits), expected.logits) < 1e-4, "blend row: \(expected.text)")
            #expect(Fixtures.maxAbsDiff(try #require(mixed[2 * index + 1].output.logits), try #require(alone[index].output.logits)) < 1e-5, "part row")
        }
        let merged = MergedModel(base: Fixtures.model, adapter: blend)
        for (expected, result) in zip(reference.cases, merged.run(reference.cases.map(\.text))) {
            #expect(Fixtures.maxAbsDiff(try #require(result.output.logits), expected.logits) < 1e-4, "merged: \(expected.text)")
        }
    }

    @Test("blends that cannot be computed exactly are refused with the reason: DoRA, IA³, Kronecker factors, other labels")
    func inexactBlendsRefused() throws {
        let lora = try LoRAAdapter(directory: Self.directory + "/lora-qv", model: Fixtures.model)
        let zoo = PEFTMethodsTests.directory + "/adapters/all-MiniLM-L6-v2/"
        for (other, reason) in [("dora-intent", "DoRA"), ("ia3-severity", "IA³"), ("lokr-device", "Kronecker"), ("adalora-room", "different labels")] {
            let adapter = try LoRAAdapter(directory: zoo + other, model: Fixtures.model)
            #expect {
                try LoRAAdapter.blend([(lora, 0.5), (adapter, 0.5)], name: "mix")
            } throws: { error in
                guard case AdapterError.blendRefused(_, let why) = error else { return false }
                return why.contains(reason)
            }
        }
        #expect(throws: AdapterError.self) { try LoRAAdapter.blend([(lora, .nan)], name: "nan") }
    }
}
