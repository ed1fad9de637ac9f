import AdapterEngine
import Foundation

/// Fits an `InputRouter` on labelled texts: per stage, features from the base model, standardisation and an
/// L2-penalised softmax regression, scored by stratified cross-validation; then each cheap stage's confidence
/// threshold, chosen on the out-of-fold predictions so that escalating less costs no accuracy.
public struct RouterFitter: Sendable {
    /// How to fit.
    public struct Options: Sendable {
        public var kind: RouterKind = .cascade
        public var folds = 5
        /// L2 penalties tried per stage (several: chosen by cross-validation). One fixed penalty by default: the
        /// router study found that choosing it per data set swings the confidence scale, and with it how many
        /// requests a threshold escalates (Benchmarks/README.md, "Input routing").
        public var lambdas: [Double] = [0.01]
        /// A fixed escalation threshold for the cheap stage instead of the fitted one.
        public var threshold: Float?
        /// Most of the examples (out of fold) the cheap stage may pass on: the cascade's average cost is about this
        /// share of a full pass. Within it, the threshold with the best out-of-fold accuracy wins (ties: fewer
        /// escalations).
        public var maxEscalation = 0.2

        public init() {}
    }

    /// What fitting measured, stage by stage.
    public struct Report: Sendable {
        public struct Stage: Sendable {
            public let features: RouterStage.Features
            public let lambda: Double
            /// Out-of-fold accuracy of this stage alone.
            public let accuracy: Double
            public let threshold: Float
        }

        public let stages: [Stage]
        /// Out-of-fold accuracy of the whole cascade and the share of examples its cheap stage passed on.
        public let accuracy: Double
        public let escalationRate: Double
    }

    let engine: InferenceEngine
    let fingerprint: String

    /// A fitter computing features with `engine`, whose `model.safetensors` hashes to `fingerprint`.
    public init(engine: InferenceEngine, fingerprint: String) {
        self.engine = engine
        self.fingerprint = fingerprint
    }

    /// Fits a router choosing between the adapters named in `examples`.
    public func fit(_ examples: [RoutingExample], options: Options = Options()) throws -> (InputRouter, Report) {
        let labels = Array(Set(examples.map(\.adapter))).sorted()
        guard labels.count >= 2 else { throw RouterError.tooFewExamples("the examples name \(labels.count) adapter(s); a router needs at least two") }
        let counts = Dictionary(grouping: examples, by: \.adapter).mapValues(\.count)
        let folds = min(options.folds, counts.values.min() ?? 0)
        guard folds >= 2 else {
            throw RouterError.tooFewExamples("adapter '\(counts.min { $0.value < $1.value }!.key)' has one example; give each at least two (five or more fit well)")
        }
        let y = examples.map { labels.firstIndex(of: $0.adapter)! }
        let fold = Self.stratifiedFolds(y, folds: folds)
        let encoded = examples.map { engine.encode($0.text).ids }

        var stages: [RouterStage] = []
        var reports: [(features: RouterStage.Features, lambda: Double, accuracy: Double, outOfFold: [[Float]])] = []
        for features in options.kind.features(layers: engine.model.config.numHiddenLayers) {
            let pooled = try pooledFeatures(encoded.map(features.truncate), layers: features.layers)
            var best: (lambda: Double, accuracy: Double, outOfFold: [[Float]])?
            for lambda in options.lambdas {
                let outOfFold = Self.crossValidate(pooled, y, fold: fold, folds: folds, classes: labels.count, features: features, lambda: lambda)
                let accuracy = Self.accuracy(outOfFold, y)
                // Ties go to the stronger penalty: the smoother model generalises better to texts not seen.
                if best == nil || accuracy >= best!.accuracy { best = (lambda, accuracy, outOfFold) }
            }
            let chosen = best!
            let (mean, scale) = Self.standardisation(pooled.map(features.normalise))
            var stage = RouterStage(features: features, threshold: 0, mean: mean, scale: scale, weight: [], bias: [])
            let model = SoftmaxRegression(
                features: pooled.flatMap(stage.prepare), labels: y, classes: labels.count, dimensions: mean.count, lambda: chosen.lambda)
            stage.weight = model.weight
            stage.bias = model.bias
            stages.append(stage)
            reports.append((features, chosen.lambda, chosen.accuracy, chosen.outOfFold))
        }

        // Thresholds, cheapest stage first: the best out-of-fold accuracy among those escalating at most
        // `maxEscalation` of the examples.
        for index in stages.indices.dropLast() {
            if let fixed = options.threshold {
                stages[index].threshold = fixed
                continue
            }
            let candidates = Set(reports[index].outOfFold.map { $0.max()! }).sorted() + [1.01]
            var best: (threshold: Float, accuracy: Double, escalated: Double)?
            for threshold in candidates {
                let thresholds = stages.map(\.threshold)
                let result = Self.cascadeAccuracy(reports.map(\.outOfFold), thresholds: thresholds, at: index, threshold: threshold, y)
                guard result.escalated <= options.maxEscalation else { continue }
                if best == nil || result.accuracy > best!.accuracy || (result.accuracy == best!.accuracy && result.escalated < best!.escalated) {
                    best = (threshold, result.accuracy, result.escalated)
                }
            }
            stages[index].threshold = best?.threshold ?? 0
        }
        let thresholds = stages.map(\.threshold)
        let cascade = Self.cascadeAccuracy(reports.map(\.outOfFold), thresholds: thresholds, at: 0, threshold: thresholds[0], y)
        let report = Report(
            stages: zip(reports, stages).map { Report.Stage(features: $0.0.features, lambda: $0.0.lambda, accuracy: $0.0.accuracy, threshold: $0.1.threshold) },
            accuracy: cascade.accuracy, escalationRate: cascade.escalated)
        let summary = InputRouter.FitSummary(
            examples: examples.count, crossValidatedAccuracy: cascade.accuracy, escalationRate: cascade.escalated,
            regularization: reports.map(\.lambda), createdAt: Date().formatted(.iso8601))
        return (InputRouter(labels: labels, stages: stages, baseFingerprint: fingerprint, fit: summary), report)
    }

    /// Pooled features for every row, in batches of 32.
    private func pooledFeatures(_ rows: [[Int32]], layers: Int) throws -> [[Float]] {
        var out: [[Float]] = []
        for start in stride(from: 0, to: rows.count, by: 32) {
            out += try engine.features(encoded: Array(rows[start..<min(start + 32, rows.count)]), layers: layers)
        }
        return out
    }

    static func standardisation(_ rows: [[Float]]) -> (mean: [Float], scale: [Float]) {
        let d = rows[0].count
        var mean = [Double](repeating: 0, count: d)
        for row in rows { for j in 0..<d { mean[j] += Double(row[j]) } }
        for j in 0..<d { mean[j] /= Double(rows.count) }
        var variance = [Double](repeating: 0, count: d)
        for row in rows { for j in 0..<d { variance[j] += (Double(row[j]) - mean[j]) * (Double(row[j]) - mean[j]) } }
        let scale = variance.map { Float(max(($0 / Double(rows.count)).squareRoot(), 1e-6)) }
        return (mean.map(Float.init), scale)
    }

    /// Fold of each example: round robin within each class, so every fold holds every class.
    static func stratifiedFolds(_ y: [Int], folds: Int) -> [Int] {
        var seen: [Int: Int] = [:]
        return y.map { label in
            let index = seen[label, default: 0]
            seen[label] = index + 1
            return index % folds
        }
    }

    /// Out-of-fold class probabilities for every example.
    static func crossValidate(
        _ pooled: [[Float]], _ y: [Int], fold: [Int], folds: Int, classes: Int, features: RouterStage.Features, lambda: Double
    ) -> [[Float]] {
        var out = [[Float]](repeating: [], count: y.count)
        for held in 0..<folds {
            let train = y.indices.filter { fold[$0] != held }
            let test = y.indices.filter { fold[$0] == held }
            let (mean, scale) = standardisation(train.map { features.normalise(pooled[$0]) })
            let stage = RouterStage(features: features, threshold: 0, mean: mean, scale: scale, weight: [], bias: [])
            let model = SoftmaxRegression(
                features: train.flatMap { stage.prepare(pooled[$0]) }, labels: train.map { y[$0] }, classes: classes,
                dimensions: mean.count, lambda: lambda)
            let probabilities = model.probabilities(test.flatMap { stage.prepare(pooled[$0]) }, count: test.count)
            for (index, row) in zip(test, probabilities) { out[index] = row }
        }
        return out
    }

    static func accuracy(_ probabilities: [[Float]], _ y: [Int]) -> Double {
        Double(zip(probabilities, y).filter { argmax($0.0) == $0.1 }.count) / Double(y.count)
    }

    /// Accuracy and escalation share of the cascade when stage `index` uses `threshold` (others as given).
    static func cascadeAccuracy(_ stages: [[[Float]]], thresholds: [Float], at index: Int, threshold: Float, _ y: [Int]) -> (accuracy: Double, escalated: Double) {
        var correct = 0, escalated = 0
        for example in y.indices {
            for stage in stages.indices {
                let probabilities = stages[stage][example]
                let limit = stage == index ? threshold : thresholds[stage]
                if stage == stages.count - 1 || probabilities.max()! >= limit {
                    if argmax(probabilities) == y[example] { correct += 1 }
                    break
                }
                if stage == 0 { escalated += 1 }
            }
        }
        return (Double(correct) / Double(y.count), Double(escalated) / Double(y.count))
    }

    static func argmax(_ values: [Float]) -> Int {
        var best = 0
        for index in values.indices where values[index] > values[best] { best = index }
        return best
    }
}
