import AdapterTraining
import FederatedLearning
import Testing

/// Aggregation of workers' updates: exact for FFA-LoRA, weighted by examples, refusing updates that do not fit.
@Suite("FederatedAggregator")
struct FederatedAggregatorTests {
    static let a = "base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight"
    static let b = "base_model.model.bert.encoder.layer.0.attention.self.query.lora_B.weight"
    static let head = "base_model.model.classifier.weight"

    /// A global adapter with a 2×4 A, a 3×2 B and a 2×3 head.
    static func global(_ seed: UInt64 = 1) -> TensorSet {
        var random = SeededRandom(seed: seed)
        func values(_ count: Int) -> [Float] { (0..<count).map { _ in random.normal() } }
        return TensorSet(tensors: [
            a: .init(shape: [2, 4], values: values(8)), b: .init(shape: [3, 2], values: values(6)), head: .init(shape: [2, 3], values: values(6)),
        ])
    }

    static func product(_ b: [Float], _ a: [Float]) -> [Float] {
        (0..<3).flatMap { row in (0..<4).map { column in (0..<2).reduce(Float(0)) { $0 + b[row * 2 + $1] * a[$1 * 4 + column] } } }
    }

    @Test("FFA-LoRA: the new B times the frozen A is exactly the example-weighted mean of the workers' products")
    func frozenAIsExact() throws {
        let global = Self.global()
        let aggregator = FederatedAggregator(method: .frozenA)
        #expect(aggregator.trainedNames(of: global) == [Self.head, Self.b].sorted())
        var random = SeededRandom(seed: 7)
        let updates = (0..<4).map { index in
            ClientUpdate(worker: "w\(index)", tensors: global.restricted(to: [Self.b, Self.head]).mapped { $0 + random.normal() }, examples: 5 * (index + 1), localAccuracy: nil)
        }
        for update in updates { try aggregator.check(update, against: global) }
        let next = try aggregator.aggregate(global: global, updates: updates, random: &random)
        #expect(next.tensors[Self.a] == global.tensors[Self.a], "A must not move")
        let total = Float(updates.reduce(0) { $0 + $1.examples })
        var expected = [Float](repeating: 0, count: 12)
        for update in updates {
            let product = Self.product(update.tensors.tensors[Self.b]!.values, global.tensors[Self.a]!.values)
            for i in expected.indices { expected[i] += Float(update.examples) / total * product[i] }
        }
        let got = Self.product(next.tensors[Self.b]!.values, next.tensors[Self.a]!.values)
        #expect(zip(got, expected).allSatisfy { abs($0 - $1) < 1e-5 }, "\(got) vs \(expected)")
    }

    @Test("FedIT: averaging A and B apart is not the mean of the products (why FFA-LoRA is the default)")
    func factorAverageIsInexact() throws {
        let global = Self.global()
        let aggregator = FederatedAggregator(method: .factorAverage)
        var random = SeededRandom(seed: 3)
        let updates = (0..<2).map { index in ClientUpdate(worker: "w\(index)", tensors: global.mapped { $0 + random.normal() }, examples: 10, localAccuracy: nil) }
        let next = try aggregator.aggregate(global: global, updates: updates, random: &random)
        let mean = zip(Self.product(updates[0].tensors.tensors[Self.b]!.values, updates[0].tensors.tensors[Self.a]!.values),
                       Self.product(updates[1].tensors.tensors[Self.b]!.values, updates[1].tensors.tensors[Self.a]!.values)).map { ($0 + $1) / 2 }
        let got = Self.product(next.tensors[Self.b]!.values, next.tensors[Self.a]!.values)
        #expect(zip(got, mean).map { abs($0 - $1) }.max()! > 1e-2)
    }

    @Test("updates with a missing tensor, another shape, a NaN or no examples are refused with the reason")
    func unfitUpdatesAreRefused() {
        let global = Self.global()
        let aggregator = FederatedAggregator(method: .frozenA)
        let good = global.restricted(to: [Self.b, Self.head])
        var nan = good
        nan.tensors[Self.b]!.values[0] = .nan
        var reshaped = good
        reshaped.tensors[Self.b]!.shape = [2, 3]
        let cases: [(TensorSet, Int, String)] = [
            (global.restricted(to: [Self.b]), 5, "missing"), (global, 5, "unexpected"), (nan, 5, "not finite"), (reshaped, 5, "shape"), (good, 0, "no examples"),
        ]
        for (tensors, examples, reason) in cases {
            #expect(throws: FederatedError.self) { try aggregator.check(ClientUpdate(worker: "w", tensors: tensors, examples: examples, localAccuracy: nil), against: global) }
            do {
                try aggregator.check(ClientUpdate(worker: "w", tensors: tensors, examples: examples, localAccuracy: nil), against: global)
            } catch {
                #expect(error.description.contains(reason), "\(error)")
            }
        }
    }

    @Test("the first round takes the layout and frozen A from the first update and refuses a worker that started elsewhere")
    func firstRoundRefusesOtherStarts() {
        let global = Self.global()
        let aggregator = FederatedAggregator(method: .frozenA)
        let other = Self.global(2)
        let (first, usable, refused) = aggregator.firstRound([
            ClientUpdate(worker: "w0", tensors: global, examples: 4, localAccuracy: 0.5),
            ClientUpdate(worker: "w1", tensors: global.mapped { $0 * 1.5 }.replacing(Self.a, with: global), examples: 4, localAccuracy: nil),
            ClientUpdate(worker: "w2", tensors: other, examples: 4, localAccuracy: nil),
        ])
        #expect(first == global)
        #expect(usable.map(\.worker) == ["w0", "w1"])
        #expect(usable.allSatisfy { $0.tensors.names == [Self.head, Self.b].sorted() })
        #expect(refused.map(\.worker) == ["w2"] && refused[0].reason.contains("initialisation"))
    }

    @Test("under differential privacy a worker's change is clipped to the bound before the noise")
    func privacyClipsChanges() throws {
        let global = Self.global()
        let aggregator = FederatedAggregator(method: .frozenA, privacy: DifferentialPrivacy(clip: 0.5, noiseMultiplier: 1e-6))
        var random = SeededRandom(seed: 5)
        let far = ClientUpdate(worker: "w0", tensors: global.restricted(to: [Self.b, Self.head]).mapped { $0 + 100 }, examples: 1000, localAccuracy: nil)
        let next = try aggregator.aggregate(global: global, updates: [far], random: &random)
        var squares = 0.0
        for name in [Self.b, Self.head] {
            for (new, old) in zip(next.tensors[name]!.values, global.tensors[name]!.values) { squares += Double(new - old) * Double(new - old) }
        }
        #expect(abs(squares.squareRoot() - 0.5) < 1e-3, "the change's norm is \(squares.squareRoot())")
    }

    @Test("tensor sets survive the safetensors round trip; bytes that are not a tensor file are refused")
    func tensorSetRoundTrip() throws {
        var global = Self.global()
        global.metadata = ["examples": "12"]
        let read = try TensorSet(safetensors: global.safetensors(), name: "update")
        #expect(read == global)
        #expect(throws: FederatedError.self) { try TensorSet(safetensors: Array("not a tensor file".utf8), name: "update") }
        #expect(throws: FederatedError.self) { try TensorSet(safetensors: Array(global.safetensors().prefix(40)), name: "update") }
    }
}

extension TensorSet {
    /// Every value passed through `transform`.
    func mapped(_ transform: (Float) -> Float) -> TensorSet {
        var copy = self
        for name in names { copy.tensors[name]!.values = copy.tensors[name]!.values.map(transform) }
        return copy
    }

    /// This set with tensor `name` taken from `other`.
    func replacing(_ name: String, with other: TensorSet) -> TensorSet {
        var copy = self
        copy.tensors[name] = other.tensors[name]
        return copy
    }
}

/// The exact product mean re-factored to the rank.
@Suite("LowRankMerge")
struct LowRankMergeTests {
    @Test("the merged factors' product is the weighted mean of the products when that mean has the rank, and A's rows are orthonormal")
    func mergeIsExactAtRank() {
        var random = SeededRandom(seed: 11)
        let (inputs, outputs, rank) = (10, 7, 2)
        // Two workers sharing A: the mean of products has rank 2, so re-factoring to rank 2 is exact.
        let a = (0..<(rank * inputs)).map { _ in random.normal() }
        let pairs = (0..<2).map { _ in (a: a, b: (0..<(outputs * rank)).map { _ in random.normal() }) }
        let weights = [0.25, 0.75]
        let merged = LowRankMerge.merge(pairs: pairs, weights: weights, rank: rank, inputs: inputs, outputs: outputs)
        func product(_ b: [Float], _ a: [Float]) -> [Double] {
            (0..<outputs).flatMap { y in (0..<inputs).map { x in (0..<rank).reduce(0.0) { $0 + Double(b[y * rank + $1]) * Double(a[$1 * inputs + x]) } } }
        }
        let expected = zip(product(pairs[0].b, a), product(pairs[1].b, a)).map { 0.25 * $0 + 0.75 * $1 }
        let got = product(merged.b, merged.a)
        #expect(zip(got, expected).map { abs($0 - $1) }.max()! < 1e-4)
        for i in 0..<rank {
            for j in 0..<rank {
                let dot = (0..<inputs).reduce(0.0) { $0 + Double(merged.a[i * inputs + $1]) * Double(merged.a[j * inputs + $1]) }
                #expect(abs(dot - (i == j ? 1 : 0)) < 1e-4)
            }
        }
    }

    @Test("past the rank it keeps the largest singular directions: no worse than FedIT's mean of factors")
    func mergeBeatsFactorMean() {
        var random = SeededRandom(seed: 12)
        let (inputs, outputs, rank) = (12, 9, 2)
        let pairs = (0..<3).map { _ in (a: (0..<(rank * inputs)).map { _ in random.normal() }, b: (0..<(outputs * rank)).map { _ in random.normal() }) }
        let weights = [0.2, 0.3, 0.5]
        func product(_ b: [Float], _ a: [Float]) -> [Double] {
            (0..<outputs).flatMap { y in (0..<inputs).map { x in (0..<rank).reduce(0.0) { $0 + Double(b[y * rank + $1]) * Double(a[$1 * inputs + x]) } } }
        }
        var mean = [Double](repeating: 0, count: outputs * inputs)
        for (pair, weight) in zip(pairs, weights) { for (i, value) in product(pair.b, pair.a).enumerated() { mean[i] += weight * value } }
        let merged = LowRankMerge.merge(pairs: pairs, weights: weights, rank: rank, inputs: inputs, outputs: outputs)
        let factorA = (0..<(rank * inputs)).map { i in Float(zip(pairs, weights).reduce(0.0) { $0 + $1.1 * Double($1.0.a[i]) }) }
        let factorB = (0..<(outputs * rank)).map { i in Float(zip(pairs, weights).reduce(0.0) { $0 + $1.1 * Double($1.0.b[i]) }) }
        func error(_ values: [Double]) -> Double { zip(values, mean).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }.squareRoot() }
        #expect(error(product(merged.b, merged.a)) < error(product(factorB, factorA)))
    }
}
