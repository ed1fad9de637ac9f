import AdapterEngine
import AdapterdTestSupport
import Foundation
import Testing

/// Adapters saved by PEFT itself (scripts/make-reference) that exercise config semantics the shared reference
/// set does not: regex targets, layer subsets, rank/alpha patterns, exclusions, embedding LoRA, all-linear, BF16.
@Suite("PEFT config semantics")
struct PEFTSemanticsTests {
    struct Cases: Decodable {
        struct Adapter: Decodable {
            let name: String
            let cases: [ReferenceCases.AdapterCase]
        }
        let texts: [String]
        let adapters: [Adapter]
    }

    static let directory = Fixtures.root + "/Tests/AdapterEngineTests/Fixtures/peft-semantics"
    static let cases: Cases = try! JSONDecoder().decode(
        Cases.self, from: Data(contentsOf: URL(fileURLWithPath: directory + "/cases.json")))

    static func adapter(_ name: String) throws -> LoRAAdapter {
        try LoRAAdapter(directory: directory + "/adapters/" + name, model: Fixtures.model)
    }

    @Test("logits match PyTorch+PEFT within 1e-4", arguments: cases.adapters.map(\.name))
    func logitsMatchPEFT(name: String) throws {
        let reference = try #require(Self.cases.adapters.first { $0.name == name })
        let results = Fixtures.engine.run(reference.cases.map(\.text), adapter: try Self.adapter(name))
        for (expected, result) in zip(reference.cases, results) {
            #expect(Fixtures.maxAbsDiff(try #require(result.output.logits), expected.logits) < 1e-4, "\(name): \(expected.text)")
            #expect(result.output.label == expected.label)
        }
    }

    @Test("rank_pattern and alpha_pattern resolve by the first matching key in file order")
    func patternsResolveInOrder() throws {
        let adapter = try Self.adapter("rank-alpha-patterns")
        // "layer.0.attention.self.query" precedes "query" in the file, so layer 0 gets rank 2, the others 4.
        #expect(adapter.layers[0][LinearSlot.query.rawValue]?.rank == 2)
        #expect(adapter.layers[3][LinearSlot.query.rawValue]?.rank == 4)
        #expect(adapter.layers[3][LinearSlot.value.rawValue]?.rank == 8)
        #expect(adapter.pooler?.rank == 12)
        #expect(adapter.layers[5][LinearSlot.query.rawValue]?.scaling == 10)
        #expect(adapter.layers[2][LinearSlot.value.rawValue]?.scaling == Float(3) / Float(8))
    }

    @Test("layers_to_transform, layers_pattern and exclude_modules select exactly the intended modules")
    func layerSelection() throws {
        let subset = try Self.adapter("layers-subset")
        let targeted = subset.modules.map(\.module)
        #expect(targeted.count == 8)
        #expect(targeted.allSatisfy { if case .linear(let layer, _) = $0 { return layer == 1 || layer == 4 } else { return false } })
        let pattern = try Self.adapter("layers-pattern")
        #expect(pattern.modules.map(\.module) == [.linear(layer: 3, slot: .value), .linear(layer: 3, slot: .intermediate)])
        let excluded = try Self.adapter("exclude-modules")
        #expect(excluded.layers[2][LinearSlot.key.rawValue] == nil)
        #expect(excluded.layers[2][LinearSlot.query.rawValue] != nil)
        #expect(excluded.modules.count == 17)
    }

    @Test("a mixed batch with embedding-LoRA and pattern adapters equals one-by-one runs")
    func mixedBatch() throws {
        let adapters = try Self.cases.adapters.map { try Self.adapter($0.name) }
        let batch = Self.cases.texts.flatMap { text in adapters.map { (text: text, adapter: Optional($0)) } }
        let mixed = Fixtures.engine.run(batch)
        for (request, result) in zip(batch, mixed) {
            let single = Fixtures.engine.run([request])[0]
            #expect(Fixtures.maxAbsDiff(try #require(result.output.logits), try #require(single.output.logits)) < 1e-5)
        }
    }

    @Test("merging embedding LoRA and pooler LoRA gives the unmerged outputs", arguments: ["embeddings", "rank-alpha-patterns", "all-linear-rslora"])
    func mergedEqualsUnmerged(name: String) throws {
        let adapter = try Self.adapter(name)
        let unmerged = Fixtures.engine.run(Self.cases.texts, adapter: adapter)
        let merged = MergedModel(base: Fixtures.model, adapter: adapter).run(Self.cases.texts)
        for (a, b) in zip(unmerged, merged) {
            #expect(Fixtures.maxAbsDiff(try #require(a.output.logits), try #require(b.output.logits)) < 1e-4)
        }
    }
}
