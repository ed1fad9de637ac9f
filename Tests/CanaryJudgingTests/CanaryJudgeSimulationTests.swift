@testable import CanaryJudging
import Foundation
import Testing

/// The judge over many randomised fleets, in process: workers with their own label mixes and traffic, a good version
/// (the same behaviour on every worker) and bad ones (20 points more errors, labels drifted, twice the latency).
/// Each fleet is judged as a wave is: an interval verdict, and where that is undecided, the final one.
@Suite("CanaryJudge simulation")
struct CanaryJudgeSimulationTests {
    enum Version: CaseIterable {
        case good, errors, drift, latency
    }

    /// One randomised fleet's strata for `version`.
    static func fleet(_ version: Version, random: inout SplitMix64) -> [CanaryStratum] {
        let labels = ["a", "b", "c", "d", "e", "f"]
        let workers = 2 + Int(random.next() % 7)
        let errorRate = Double(random.next() % 4) / 100
        return (0..<workers).map { index in
            // Each site its own mix: squared random weights make some labels rare and others common.
            let weights = labels.map { _ in pow(random.nextUnit() + 0.05, 2) }
            let mix = weights.map { $0 / weights.reduce(0, +) }
            var newMix = mix
            if version == .drift {
                // Half of every label's share moves to the label that was rarest: a drift of about 0.5.
                let rarest = mix.indices.min { mix[$0] < mix[$1] }!
                newMix = mix.map { $0 / 2 }
                newMix[rarest] += 0.5
            }
            let before = 300 + Int(random.next() % 1700), after = 60 + Int(random.next() % 340)
            let p95 = 5 + random.nextUnit() * 20
            func figures(requests: Int, mix: [Double], errors: Double, p95: Double) -> CanaryFigures {
                var counts: [String: Int] = [:]
                var failed = 0
                for _ in 0..<requests {
                    if random.nextUnit() < errors { failed += 1; continue }
                    let u = random.nextUnit()
                    var sum = 0.0
                    let label = labels.indices.first { sum += mix[$0]; return u < sum } ?? labels.count - 1
                    counts[labels[label], default: 0] += 1
                }
                return CanaryFigures(requests: requests, errors: failed, p95Ms: p95, labels: counts, meanConfidence: 0.8)
            }
            let baseline = figures(requests: before, mix: mix, errors: errorRate, p95: p95 * (0.9 + 0.2 * random.nextUnit()))
            let canary = figures(
                requests: after, mix: newMix, errors: errorRate + (version == .errors ? 0.2 : 0),
                p95: p95 * (version == .latency ? 2 : 1) * (0.9 + 0.2 * random.nextUnit()))
            return CanaryStratum(worker: "w\(index)", canary: canary, baseline: baseline)
        }
    }

    /// The wave's decision: the interval verdict, then the final one if that was undecided.
    static func decide(_ strata: [CanaryStratum]) -> CanaryVerdict {
        let verdict = CanaryJudge.verdict(strata, named: "v1", thresholds: CanaryThresholds(), final: false)
        if verdict.violation != nil || !verdict.undecided { return verdict }
        return CanaryJudge.verdict(strata, named: "v1", thresholds: CanaryThresholds(), final: true)
    }

    @Test("over 100 randomised fleets each, good versions are aborted and bad ones passed at most 1% of the time, each bad one for its own reason")
    func errorRatesAtTheDefaults() {
        var random = SplitMix64(seed: 2026_12_06)
        // 1,000 fleets each gave 0 wrong verdicts for every version (Benchmarks/README.md); 100 keep the test short.
        let fleets = 100
        for version in Version.allCases {
            var wrong = 0
            var reasons: [String: Int] = [:]
            for _ in 0..<fleets {
                let verdict = Self.decide(Self.fleet(version, random: &random))
                let aborted = verdict.violation != nil
                if aborted != (version != .good) { wrong += 1 }
                if let failed = verdict.criteria.first(where: { $0.outcome == .fail }) { reasons[failed.name, default: 0] += 1 }
            }
            #expect(Double(wrong) / Double(fleets) <= 0.01, "\(version): \(wrong) of \(fleets) wrong; first failed criteria \(reasons)")
            let expected = ["errors": "error rate increase", "drift": "label drift", "latency": "p95 latency ratio"]["\(version)"]
            if let expected { #expect(reasons[expected] == fleets - wrong, "\(version): \(reasons)") }
        }
    }

    @Test("pooled over workers with different mixes, a label-identical version looks drifted; compared worker by worker it does not")
    func stratifiedDriftIgnoresTrafficMix() {
        // Two sites: one all 'climate', one all 'lights'. The old version served mostly the first, the new one mostly
        // the second: the pooled label shares differ by 0.6, although each site's labels are the same as before.
        let north = CanaryStratum(
            worker: "north", canary: CanaryFigures(requests: 20, errors: 0, p95Ms: 10, labels: ["climate": 20]),
            baseline: CanaryFigures(requests: 800, errors: 0, p95Ms: 10, labels: ["climate": 800]))
        let south = CanaryStratum(
            worker: "south", canary: CanaryFigures(requests: 80, errors: 0, p95Ms: 10, labels: ["lights": 80]),
            baseline: CanaryFigures(requests: 200, errors: 0, p95Ms: 10, labels: ["lights": 200]))
        var pooledCanary = north.canary, pooledBaseline = north.baseline
        pooledCanary.add(south.canary)
        pooledBaseline.add(south.baseline)
        #expect(CanaryJudge.violation(of: pooledCanary, against: pooledBaseline, named: "v1", thresholds: CanaryThresholds())?.contains("drift") == true)
        let verdict = CanaryJudge.verdict([north, south], named: "v1", thresholds: CanaryThresholds(), final: false)
        #expect(verdict.violation == nil && verdict.criteria.first { $0.name == "label drift" }?.value == 0, "\(verdict.criteria.map(\.summary))")
    }

    @Test("a few requests leave the error rate undecided, with the number needed; enough decide it either way")
    func smallSamplesAreUndecided() throws {
        let baseline = CanaryFigures(requests: 1000, errors: 10, p95Ms: 10)
        let few = CanaryJudge.verdict([CanaryStratum(worker: "w", canary: CanaryFigures(requests: 12, errors: 1, p95Ms: 10), baseline: baseline)],
                                      named: "v1", thresholds: CanaryThresholds(), final: false)
        let criterion = try #require(few.criteria.first { $0.name == "error rate increase" })
        #expect(criterion.outcome == .undecided && criterion.needed > 12 && few.violation == nil, "\(criterion.summary)")
        let good = CanaryJudge.verdict([CanaryStratum(worker: "w", canary: CanaryFigures(requests: 600, errors: 6, p95Ms: 10), baseline: baseline)],
                                       named: "v1", thresholds: CanaryThresholds(), final: false)
        #expect(good.criteria.first { $0.name == "error rate increase" }?.outcome == .pass)
        let bad = CanaryJudge.verdict([CanaryStratum(worker: "w", canary: CanaryFigures(requests: 600, errors: 150, p95Ms: 10), baseline: baseline)],
                                      named: "v1", thresholds: CanaryThresholds(), final: false)
        #expect(bad.violation?.contains("error rate") == true && bad.violation?.contains("99% interval") == true, "\(bad.violation ?? "passed")")
    }
}
