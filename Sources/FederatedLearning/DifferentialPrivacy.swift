import Foundation

/// User-level differential privacy for a federated run (DP-FedAvg, McMahan et al. 2018): each worker's change to the
/// global adapter is clipped to L2 norm `clip`, the clipped changes are averaged with equal weights (example counts
/// would leak), and Gaussian noise of standard deviation `noiseMultiplier · clip / workers` is added to the mean.
public struct DifferentialPrivacy: Sendable, Equatable, Codable {
    /// L2 bound on one worker's change, over all its trained tensors.
    public var clip: Double
    /// σ: the noise's standard deviation in units of `clip`.
    public var noiseMultiplier: Double
    /// The δ the reported ε holds for.
    public var delta: Double

    /// Clipping at `clip` with noise multiplier `noiseMultiplier`, accounted at `delta`.
    public init(clip: Double, noiseMultiplier: Double, delta: Double = 1e-5) {
        self.clip = clip
        self.noiseMultiplier = noiseMultiplier
        self.delta = delta
    }

    /// Refuses settings that cannot give a guarantee.
    public func validate() throws(FederatedError) {
        guard clip.isFinite, clip > 0 else { throw .invalidOptions("--dp-clip must be a positive number, got \(clip)") }
        guard noiseMultiplier.isFinite, noiseMultiplier > 0 else { throw .invalidOptions("--dp-noise must be a positive number, got \(noiseMultiplier)") }
        guard delta > 0, delta < 1 else { throw .invalidOptions("--dp-delta must be in (0, 1), got \(delta)") }
    }

    /// The ε after `rounds` rounds, from the Rényi-DP accountant.
    public func epsilon(rounds: Int) -> Double {
        PrivacyAccountant(noiseMultiplier: noiseMultiplier).epsilon(rounds: rounds, delta: delta)
    }
}

/// Rényi differential privacy of the Gaussian mechanism composed over rounds (Mironov 2017), converted to (ε, δ) as
/// Opacus' RDP accountant does (Balle et al. 2020), minimised over the same orders. Every round counts as a full
/// Gaussian mechanism: picking workers for a round is not Poisson sampling, so no amplification by sampling is
/// claimed (the ε is an upper bound).
public struct PrivacyAccountant: Sendable {
    /// σ of each round.
    public let noiseMultiplier: Double

    /// Opacus' default orders.
    public static let orders: [Double] = (1..<100).map { 1 + Double($0) / 10 } + (12..<64).map(Double.init)

    /// An accountant for rounds with noise multiplier `noiseMultiplier`.
    public init(noiseMultiplier: Double) {
        self.noiseMultiplier = noiseMultiplier
    }

    /// Rényi DP of order `alpha` after `rounds` rounds: `rounds · α / (2σ²)`.
    public func rdp(order alpha: Double, rounds: Int) -> Double {
        Double(rounds) * alpha / (2 * noiseMultiplier * noiseMultiplier)
    }

    /// The smallest ε over the orders with which `rounds` rounds are (ε, δ)-DP.
    public func epsilon(rounds: Int, delta: Double) -> Double {
        guard rounds > 0 else { return 0 }
        return Self.orders.map { alpha in
            rdp(order: alpha, rounds: rounds) - (log(delta) + log(alpha)) / (alpha - 1) + log((alpha - 1) / alpha)
        }.min() ?? .infinity
    }
}
