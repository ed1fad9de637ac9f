import AdapterEngine
import AdapterdTestSupport
import Testing

@Suite("InferenceEngine")
struct InferenceEngineTests {
    @Test("sentence embeddings match PyTorch within 1e-4", arguments: Fixtures.cases.embeddings.indices)
    func embeddingsMatchReference(index: Int) throws {
        let reference = Fixtures.cases.embeddings[index]
        let result = try #require(Fixtures.engine.run([reference.text], adapter: nil).first)
        let embedding = try #require(result.output.embedding)
        #expect(Fixtures.maxAbsDiff(embedding, reference.embedding) < 1e-4, "\(reference.text)")
    }

    @Test("classifier logits and labels match PyTorch+PEFT for every adapter and text", arguments: Fixtures.cases.adapters.map(\.name))
    func logitsMatchReference(name: String) throws {
        let reference = try #require(Fixtures.cases.adapters.first { $0.name == name })
        let adapter = try Fixtures.adapter(name)
        #expect(adapter.labels == reference.labels)
        // The F16 adapter's weights were rounded to half precision; PyTorch upcasts them the same way.
        let tolerance: Float = name.contains("fp16") ? 1e-3 : 1e-4
        let results = Fixtures.engine.run(reference.cases.map(\.text), adapter: adapter)
        for (expected, result) in zip(reference.cases, results) {
            let logits = try #require(result.output.logits)
            #expect(Fixtures.maxAbsDiff(logits, expected.logits) < tolerance, "\(name): \(expected.text)")
            #expect(result.output.label == expected.label, "\(name): \(expected.text)")
        }
    }

    @Test("a mixed batch of all adapters and the bare model gives the same rows as one-by-one runs")
    func mixedBatchMatchesSingleRuns() throws {
        let adapters = try Fixtures.cases.adapters.map { try Fixtures.adapter($0.name) }
        let texts = Fixtures.cases.tokenizer.map(\.text)
        var batch: [(text: String, adapter: LoRAAdapter?)] = []
        for (index, text) in texts.enumerated() {
            // Interleave so rows of one adapter are not adjacent in the request.
            for offset in 0...adapters.count {
                let choice = (index + offset) % (adapters.count + 1)
                batch.append((text, choice == adapters.count ? nil : adapters[choice]))
            }
        }
        let mixed = Fixtures.engine.run(batch)
        for (request, result) in zip(batch, mixed) {
            let single = try #require(Fixtures.engine.run([request]).first)
            switch (result.output, single.output) {
            case let (.classification(a, _, labelA), .classification(b, _, labelB)):
                #expect(Fixtures.maxAbsDiff(a, b) < 1e-5)
                #expect(labelA == labelB)
            case let (.embedding(a), .embedding(b)):
                #expect(Fixtures.maxAbsDiff(a, b) < 1e-5)
            default:
                Issue.record("output kinds differ for \(request.text)")
            }
        }
    }

    @Test("merged weights give the unmerged outputs within 1e-4", arguments: Fixtures.cases.adapters.map(\.name))
    func mergedEqualsUnmerged(name: String) throws {
        let adapter = try Fixtures.adapter(name)
        let texts = Fixtures.cases.tokenizer.map(\.text)
        let unmerged = Fixtures.engine.run(texts, adapter: adapter)
        let merged = MergedModel(base: Fixtures.model, adapter: adapter).run(texts)
        for (a, b) in zip(unmerged, merged) {
            #expect(Fixtures.maxAbsDiff(try #require(a.output.logits), try #require(b.output.logits)) < 1e-4)
        }
    }

    @Test("merging leaves the shared base weights untouched")
    func mergingDoesNotModifyBase() throws {
        let before = Fixtures.engine.run(["lock the door"], adapter: nil)[0].output
        _ = MergedModel(base: Fixtures.model, adapter: try Fixtures.adapter("severity"))
        #expect(Fixtures.engine.run(["lock the door"], adapter: nil)[0].output == before)
        #expect(Fixtures.model.weights.layers[0][.query].weight.storage.isMapped)
    }

    @Test("switching adapters changes outputs without reloading anything")
    func switchingAdapters() throws {
        let intent = try Fixtures.adapter("intent")
        let severity = try Fixtures.adapter("severity")
        let first = Fixtures.engine.run(["lock the door"], adapter: intent)[0].output
        _ = Fixtures.engine.run(["lock the door"], adapter: severity)
        #expect(Fixtures.engine.run(["lock the door"], adapter: intent)[0].output == first)
    }

    @Test("token ids outside the vocabulary or an empty row are refused, not run")
    func invalidEncodedInput() {
        #expect(throws: InferenceError.self) { try Fixtures.engine.run(encoded: [EncodedInput(ids: [101, 999_999, 102], adapter: nil)]) }
        #expect(throws: InferenceError.self) { try Fixtures.engine.run(encoded: [EncodedInput(ids: [], adapter: nil)]) }
        #expect(throws: InferenceError.self) { try Fixtures.engine.run(encoded: [EncodedInput(ids: Array(repeating: 101, count: 600), adapter: nil)]) }
    }
}
