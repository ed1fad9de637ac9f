import AdapterdTestSupport
import AdapterEngine
import AdapterFormats
import Foundation
import InputRouting
import Testing

@Suite("InputRouter")
struct InputRouterTests {
    static let engine = try! InferenceEngine(modelDirectory: Harness.modelDirectory)

    @Test("The default cascade fitted on the fit set routes held-out texts accurately while escalating few")
    func cascadeIsAccurateAndCheap() async throws {
        let (directory, router) = try RoutingFixtures.fitRouter(engine: Self.engine)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let evaluation = try await RouterEvaluation(router: router, examples: RoutingFixtures.eval, engine: Self.engine)
        #expect(evaluation.accuracy >= 0.95, "\(evaluation.summary)\n\(evaluation.table)")
        #expect(evaluation.escalationRate <= 0.3, "\(evaluation.summary)")
        #expect(router.labels == ["chat", "climate", "lights", "machine", "medical", "security"])
    }

    @Test("A voice command is routed by meaning, not by a keyword it lacks")
    func routesByMeaning() async throws {
        let (directory, router) = try RoutingFixtures.fitRouter(engine: Self.engine)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let decisions = try await router.route(["it's freezing in here", "turn the hallway lamp off"], engine: Self.engine)
        #expect(decisions.map(\.adapter) == ["climate", "lights"])
        #expect(decisions.allSatisfy { (0...1).contains($0.confidence) })
    }

    @Test("A router written to a directory reads back identical and decides the same")
    func roundTrips() async throws {
        let (directory, router) = try RoutingFixtures.fitRouter(engine: Self.engine)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let read = try InputRouter(directory: directory)
        #expect(read == router)
        #expect(ArtifactKind.of(directory: directory) == .router)
        let texts = RoutingFixtures.eval.prefix(12).map(\.text)
        #expect(try await read.route(Array(texts), engine: Self.engine) == router.route(Array(texts), engine: Self.engine))
    }

    @Test("A damaged router file or a router for other base weights is refused with the reason")
    func refusesDamagedRouters() throws {
        let (directory, router) = try RoutingFixtures.fitRouter(engine: Self.engine)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(throws: RouterError.self) { try router.validate(for: Self.engine.model, fingerprint: String(repeating: "0", count: 64)) }
        try Data(repeating: 0x7F, count: 32).write(to: URL(fileURLWithPath: directory + "/router.safetensors"))
        #expect { try InputRouter(directory: directory) } throws: { error in
            "\(error)".contains("router.safetensors")
        }
    }

    @Test("A router fits and routes on the other families' checkpoints too (RoBERTa, XLM-RoBERTa, DistilBERT, ModernBERT)", arguments: ["roberta", "xlm-roberta", "distilbert", "modernbert"])
    func fitsOnEveryFamily(family: String) async throws {
        let engine = try InferenceEngine(modelDirectory: Harness.root + "/Tests/AdapterEngineTests/Fixtures/encoder-zoo/models/" + family)
        let (directory, router) = try RoutingFixtures.fitRouter(engine: engine)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let evaluation = try await RouterEvaluation(router: router, examples: RoutingFixtures.eval, engine: engine)
        // Tiny random-weight encoders (0.33–0.44 measured, XLM-RoBERTa above 0.5): their features still tell six domains apart at about
        // twice chance (1 in 6) or better; the real model's are above 0.95 (cascadeIsAccurateAndCheap).
        #expect(evaluation.accuracy >= 0.3, "\(family): \(evaluation.summary)")
        let read = try InputRouter(directory: directory)
        let texts = Array(RoutingFixtures.eval.prefix(12).map(\.text))
        #expect(try await read.route(texts, engine: engine) == router.route(texts, engine: engine))
    }

    @Test("Fitting needs two adapters with two examples each, and says so")
    func fitNeedsExamples() throws {
        let fitter = RouterFitter(engine: Self.engine, fingerprint: "x")
        #expect(throws: RouterError.self) { try fitter.fit([RoutingExample(text: "a", adapter: "one"), RoutingExample(text: "b", adapter: "one")]) }
        #expect(throws: RouterError.self) { try fitter.fit([RoutingExample(text: "a", adapter: "one"), RoutingExample(text: "b", adapter: "two")]) }
    }

    @Test("Example files with a bad line name the line")
    func badExampleLine() throws {
        let path = Harness.temporaryDirectory() + "/bad.jsonl"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data("{\"text\":\"ok\",\"adapter\":\"a\"}\n{\"text\":\"no adapter\"}\n".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: RouterError.invalidExample(path: path, line: 2, reason: "expected {\"text\": …, \"adapter\": …}")) { try RoutingExample.read(jsonl: path) }
    }
}

@Suite("SoftmaxRegression")
struct SoftmaxRegressionTests {
    @Test("Separable classes are learned with confident, correct probabilities")
    func learnsSeparableClasses() {
        // Three classes, each a cluster along one axis.
        var features: [Float] = []
        var labels: [Int] = []
        for index in 0..<30 {
            let label = index % 3
            var row = [Float](repeating: 0, count: 3)
            row[label] = 2 + Float(index % 5) * 0.1
            features += row
            labels.append(label)
        }
        let model = SoftmaxRegression(features: features, labels: labels, classes: 3, dimensions: 3, lambda: 1e-3)
        let probabilities = model.probabilities(features, count: labels.count)
        for (row, label) in zip(probabilities, labels) {
            #expect(row.firstIndex(of: row.max()!) == label)
            #expect(row[label] > 0.9)
        }
    }
}
