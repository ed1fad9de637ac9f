import AdapterTraining
import Foundation

/// Splits labelled examples over clients non-IID, as federated-learning studies do (Hsu et al. 2019): for each label,
/// the shares of the clients are drawn from a symmetric Dirichlet(α) and its examples dealt out in those shares.
/// Small α gives each client few labels. For simulations and tests; a real fleet's split is whatever its boxes saw.
public struct DirichletPartition: Sendable {
    /// Concentration: 0.5 is the usual "strongly non-IID" setting, large values approach an even split.
    public var alpha: Double
    /// Fixes the draws.
    public var seed: UInt64

    /// A partition with concentration `alpha` and `seed`.
    public init(alpha: Double, seed: UInt64) {
        self.alpha = alpha
        self.seed = seed
    }

    /// `examples` dealt to `clients` clients (every example to exactly one; a client may get none).
    public func split(_ examples: [TrainingExample], clients: Int) -> [[TrainingExample]] {
        var random = SeededRandom(seed: seed)
        var parts = [[TrainingExample]](repeating: [], count: clients)
        for label in Trainer.labels(of: examples) {
            let items = examples.filter { $0.label == label }.shuffled(using: &random)
            let gammas = (0..<clients).map { _ in Self.gamma(shape: alpha, &random) }
            let total = gammas.reduce(0, +)
            // Cumulative cut points: client i takes items [cuts[i], cuts[i + 1]).
            var cumulative = 0.0
            var start = 0
            for client in 0..<clients {
                cumulative += gammas[client] / total
                let end = client == clients - 1 ? items.count : min(items.count, Int((cumulative * Double(items.count)).rounded()))
                if end > start { parts[client] += items[start..<end] }
                start = max(start, end)
            }
        }
        return parts
    }

    /// A Gamma(shape, 1) draw (Marsaglia and Tsang 2000; shape < 1 boosted by U^(1/shape)).
    static func gamma(shape: Double, _ random: inout SeededRandom) -> Double {
        if shape < 1 { return gamma(shape: shape + 1, &random) * pow(random.positiveUnit(), 1 / shape) }
        let d = shape - 1.0 / 3, c = 1 / (9 * d).squareRoot()
        while true {
            let x = Double(random.normal())
            let v = pow(1 + c * x, 3)
            guard v > 0 else { continue }
            if log(random.positiveUnit()) < 0.5 * x * x + d - d * v + d * log(v) { return d * v }
        }
    }
}
