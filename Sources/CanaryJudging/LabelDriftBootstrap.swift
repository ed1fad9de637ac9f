import Foundation

/// The label-drift criterion's interval: a parametric bootstrap over the workers' label counts. Each round draws
/// both versions' counts anew on every worker from the distributions seen there and recomputes the combined drift.
/// Total variation distance over finite samples is biased upward (two samples of one distribution are rarely
/// identical), so the estimate is bias-corrected and the interval is the basic bootstrap one, `2·D − quantiles`.
struct LabelDriftBootstrap {
    /// Rounds drawn.
    static let rounds = 300

    /// Bias-corrected combined drift and its interval at `confidence`, over strata weighted by `weights`.
    static func estimate(
        _ strata: [(canary: [String: Int], baseline: [String: Int])], weights: [Double], confidence: Double
    ) -> (value: Double, low: Double, high: Double) {
        let observed = combined(strata.map { tvd($0.canary, $0.baseline) }, weights)
        var random = SplitMix64(seed: 0x5EED_CA4A_D00D)
        var draws: [Double] = []
        draws.reserveCapacity(rounds)
        for _ in 0..<rounds {
            let drifts = strata.map { stratum in
                tvd(resample(stratum.canary, using: &random), resample(stratum.baseline, using: &random))
            }
            draws.append(combined(drifts, weights))
        }
        draws.sort()
        let mean = draws.reduce(0, +) / Double(draws.count)
        let tail = (1 - confidence) / 2
        let lowQuantile = draws[Int(Double(draws.count - 1) * tail)], highQuantile = draws[Int(Double(draws.count - 1) * (1 - tail))]
        let value = max(0, 2 * observed - mean)
        return (value, max(0, 2 * observed - highQuantile), max(0, 2 * observed - lowQuantile))
    }

    static func combined(_ values: [Double], _ weights: [Double]) -> Double {
        let total = weights.reduce(0, +)
        return total > 0 ? zip(values, weights).reduce(0) { $0 + $1.0 * $1.1 } / total : 0
    }

    /// Total variation distance between two count tables (0 when either is empty); in floating point, so that the
    /// counts of a hostile report cannot overflow a sum.
    static func tvd(_ a: [String: Int], _ b: [String: Int]) -> Double {
        let na = a.values.reduce(0.0) { $0 + Double(max($1, 0)) }, nb = b.values.reduce(0.0) { $0 + Double(max($1, 0)) }
        guard na > 0, nb > 0 else { return 0 }
        return Set(a.keys).union(b.keys).reduce(0) { $0 + abs(Double(max(a[$1] ?? 0, 0)) / na - Double(max(b[$1] ?? 0, 0)) / nb) } / 2
    }

    /// Most requests one resample draws: beyond a million the sampling noise is far below any threshold, and the
    /// draw stays within `Int` whatever a report claims.
    static let maxDraws = 1 << 20

    /// A multinomial draw of as many requests as `counts` holds, from its own shares: a binomial per label on what
    /// the earlier labels left (O(labels), whatever the counts).
    static func resample(_ counts: [String: Int], using random: inout SplitMix64) -> [String: Int] {
        let total = counts.values.reduce(0.0) { $0 + Double(max($1, 0)) }
        guard total > 0 else { return [:] }
        var out: [String: Int] = [:]
        var left = Int(min(total, Double(maxDraws))), share = 1.0
        for key in counts.keys.sorted() {
            let p = Double(max(counts[key]!, 0)) / total
            let drawn = left == 0 || share <= 0 ? 0 : binomial(left, min(1, p / share), using: &random)
            out[key] = drawn
            left -= drawn
            share -= p
        }
        return out
    }

    /// A Binomial(n, p) draw: by inverting its distribution from 0 when the mean is small (on whichever of p and
    /// 1 − p is smaller), by the normal approximation when the variance is 25 or more.
    static func binomial(_ n: Int, _ p: Double, using random: inout SplitMix64) -> Int {
        guard n > 0, p > 0 else { return 0 }
        guard p < 1 else { return n }
        if p > 0.5 { return n - binomial(n, 1 - p, using: &random) }
        let variance = Double(n) * p * (1 - p)
        if variance >= 25 {
            // Box–Muller.
            let u1 = max(random.nextUnit(), 1e-300), u2 = random.nextUnit()
            let normal = (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
            return min(n, max(0, Int((Double(n) * p + normal * variance.squareRoot()).rounded())))
        }
        let q = 1 - p, ratio = p / q
        var probability = pow(q, Double(n)), cumulative = probability
        let u = random.nextUnit()
        var k = 0
        while u > cumulative, k < n {
            probability *= ratio * Double(n - k) / Double(k + 1)
            k += 1
            cumulative += probability
        }
        return k
    }
}

/// A small deterministic generator (Steele, Lea and Flood's SplitMix64): the same figures give the same verdict.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    mutating func nextUnit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
