import Foundation

/// A small reproducible generator (SplitMix64): the same seed gives the same initial weights and batch order on
/// every machine.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// A generator whose draws `seed` fixes.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [low, high).
    public mutating func uniform(_ low: Float, _ high: Float) -> Float {
        low + (high - low) * Float(next() >> 40) / Float(1 << 24)
    }

    /// Standard normal (Box–Muller).
    public mutating func normal() -> Float {
        Float(standardNormal())
    }
}

extension RandomNumberGenerator {
    /// Uniform in (0, 1): 53 random bits, never 0 (a logarithm's argument).
    public mutating func positiveUnit() -> Double {
        max(Double(next() >> 11) / Double(1 << 53), .leastNonzeroMagnitude)
    }

    /// A standard normal draw (Box–Muller), in double precision.
    public mutating func standardNormal() -> Double {
        let u1 = positiveUnit()
        let u2 = Double(next() >> 11) / Double(1 << 53)
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }
}
