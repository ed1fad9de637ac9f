import Foundation

/// The one canary judge: whether a new version breaks the thresholds against the version it replaces, how sure that
/// is, and why. The worker's rollout guard asks it about a split's canary on that worker; the fleet controller about
/// a wave, one stratum per worker.
///
/// Like for like: each worker's new-version figures are compared with the replaced version's on the same worker,
/// and the per-worker differences are combined, weighted by the new version's requests there. Workers whose
/// traffic differs (each site its own mix) then never make a good version look drifted, as pooling them did.
///
/// With uncertainty: the error-rate increase has a normal interval over the workers' binomial variances, the label
/// drift a bootstrap interval (`LabelDriftBootstrap`), both at `confidence`; a criterion fails only when its whole
/// interval is past the threshold, passes when it is all within, and otherwise asks for more requests (with the
/// number its interval needs). Workers report only the p95 latency and the mean confidence, so those two are
/// compared as figures. A final verdict (the wave's time is up, or the guard's call) decides what is undecided by
/// the figure itself.
public enum CanaryJudge {
    /// The confidence of every interval.
    public static let confidence = 0.99
    /// The normal quantile for `confidence`, two-sided.
    static let z = 2.576

    /// Whether both have served enough to be judged (`thresholds.minRequests` each).
    public static func canJudge(_ canary: CanaryFigures, against baseline: CanaryFigures, thresholds: CanaryThresholds) -> Bool {
        canary.requests >= thresholds.minRequests && baseline.requests >= thresholds.minRequests
    }

    /// Why `canary` breaks `thresholds` against `baseline` on one worker (named `baselineName` in the reason), or nil:
    /// a final verdict over that one stratum.
    public static func violation(of canary: CanaryFigures, against baseline: CanaryFigures, named baselineName: String, thresholds: CanaryThresholds) -> String? {
        verdict([CanaryStratum(worker: "", canary: canary, baseline: baseline)], named: baselineName, thresholds: thresholds, final: true).violation
    }

    /// The verdict over `strata`, the replaced version named `baselineName` in reasons. Workers where both versions
    /// served are compared on every criterion; where the new version is the first (nothing served before it), on
    /// its error rate alone, against none. `final` decides undecided criteria by their figures.
    public static func verdict(_ strata: [CanaryStratum], named baselineName: String, thresholds: CanaryThresholds, final: Bool) -> CanaryVerdict {
        let served = strata.filter { $0.canary.requests > 0 && $0.baseline.requests > 0 }
        let anyServed = strata.filter { $0.canary.requests > 0 }
        var criteria: [CanaryCriterion] = []
        var violation: String?
        func decide(_ criterion: CanaryCriterion, reason: (CanaryCriterion) -> String) {
            var criterion = criterion
            if final, criterion.outcome == .undecided {
                // Agreement's threshold is a minimum, the others' a maximum.
                let past = criterion.name == "shadow agreement" ? criterion.value < criterion.threshold : criterion.value > criterion.threshold
                criterion.outcome = past ? .fail : .pass
            }
            if criterion.outcome == .fail, violation == nil { violation = reason(criterion) }
            criteria.append(criterion)
        }
        let requests = CanaryFigures.total(served.map(\.canary.requests))
        let over = { (criterion: CanaryCriterion) in
            "over \(criterion.samples) requests" + (served.count > 1 ? " on \(served.count) workers" : "")
        }

        if !anyServed.isEmpty {
            decide(errorRate(anyServed, threshold: thresholds.maxErrorRateIncrease)) { c in
                let canary = Self.pooled(anyServed.map(\.canary)), baseline = Self.pooled(anyServed.map(\.baseline))
                return String(format: "error rate %.1f%% against %.1f%% for %@ (%.1f points higher, %.0f%% interval %.1f–%.1f, more than %.0f), %@",
                              canary.errorRate * 100, baseline.errorRate * 100, baselineName, c.value * 100, confidence * 100,
                              c.low * 100, c.high * 100, thresholds.maxErrorRateIncrease * 100, over(c))
            }
        }
        let timed = served.filter { $0.canary.p95Ms != nil && $0.baseline.p95Ms != nil }
        if !timed.isEmpty {
            let logRatio = weightedMean(timed.map { log($0.canary.p95Ms! / max($0.baseline.p95Ms!, 1e-6)) }, timed.map { Double($0.canary.requests) })
            let ratio = exp(logRatio)
            decide(CanaryCriterion(
                name: "p95 latency ratio", value: ratio, low: ratio, high: ratio, threshold: thresholds.maxLatencyRatio,
                outcome: ratio > thresholds.maxLatencyRatio ? .fail : .pass, samples: requests, needed: thresholds.minRequests)) { c in
                let canary = timed.compactMap(\.canary.p95Ms).max() ?? 0, baseline = timed.compactMap(\.baseline.p95Ms).max() ?? 0
                return String(format: "p95 latency %.2f× %@'s on the same workers (over %.1f×; worst p95 %.2f ms against %.2f ms), %@",
                              c.value, baselineName, thresholds.maxLatencyRatio, canary, baseline, over(c))
            }
        }
        if let minimum = thresholds.minAgreement {
            decide(agreement(served, minimum: minimum)) { c in
                String(format: "shadow agreement %.1f%% with %@ (%.0f%% interval %.1f–%.1f, below %.0f%%): the same requests got other labels, over %d comparisons",
                       c.value * 100, baselineName, confidence * 100, c.low * 100, c.high * 100, minimum * 100, c.samples)
            }
        }
        let labelled = served.filter { !$0.canary.labels.isEmpty && !$0.baseline.labels.isEmpty }
        if !labelled.isEmpty {
            decide(labelDrift(labelled, threshold: thresholds.maxLabelDrift)) { c in
                let top = Self.pooled(labelled.map(\.canary)).labels.max { $0.value < $1.value }?.key ?? "?"
                let before = Self.pooled(labelled.map(\.baseline)).labels.max { $0.value < $1.value }?.key ?? "?"
                return String(format: "predicted labels drifted by %.2f (total variation on the same workers, %.0f%% interval %.2f–%.2f, over %.2f): most often '%@' where %@ said '%@'",
                              c.value, confidence * 100, c.low, c.high, thresholds.maxLabelDrift, top, baselineName, before)
            }
        }
        let confident = served.filter { $0.canary.meanConfidence != nil && $0.baseline.meanConfidence != nil }
        if !confident.isEmpty {
            let drop = weightedMean(confident.map { $0.baseline.meanConfidence! - $0.canary.meanConfidence! }, confident.map { Double($0.canary.confidenceCount) })
            decide(CanaryCriterion(
                name: "confidence drop", value: drop, low: drop, high: drop, threshold: thresholds.maxConfidenceDrop,
                outcome: drop > thresholds.maxConfidenceDrop ? .fail : .pass, samples: requests, needed: thresholds.minRequests)) { c in
                let canary = Self.pooled(confident.map(\.canary)).meanConfidence ?? 0, baseline = Self.pooled(confident.map(\.baseline)).meanConfidence ?? 0
                return String(format: "mean top-1 confidence %.2f against %.2f for %@ (a drop of %.2f on the same workers, over %.2f)",
                              canary, baseline, baselineName, c.value, thresholds.maxConfidenceDrop)
            }
        }
        return CanaryVerdict(criteria: criteria, violation: violation)
    }

    /// The error-rate increase: per worker `p_new − p_old`, combined; its variance from each side's rate with one
    /// error and one success added (so that no errors yet still leaves room for some).
    static func errorRate(_ strata: [CanaryStratum], threshold: Double) -> CanaryCriterion {
        let weights = strata.map { Double($0.canary.requests) }
        let total = weights.reduce(0, +)
        var value = 0.0, variance = 0.0
        for (stratum, weight) in zip(strata, weights) {
            let share = weight / total
            let (canary, baseline) = (stratum.canary, stratum.baseline)
            value += share * (canary.errorRate - baseline.errorRate)
            let pc = (Double(canary.errors) + 1) / (Double(canary.requests) + 2), pb = (Double(baseline.errors) + 1) / (Double(baseline.requests) + 2)
            // No baseline (a name's first version): compared with no errors, the baseline adding no variance.
            let baselineVariance = baseline.requests > 0 ? pb * (1 - pb) / Double(baseline.requests) : 0
            variance += share * share * (pc * (1 - pc) / Double(canary.requests) + baselineVariance)
        }
        let half = z * variance.squareRoot()
        let outcome: CanaryCriterion.Outcome = value - half > threshold ? .fail : value + half <= threshold ? .pass : .undecided
        // Requests for a half-width of a quarter of the threshold at the replaced version's rate (at least 2%): from
        // there a version at the old rate passes and one a threshold worse fails.
        let rate = max(0.02, pooled(strata.map(\.baseline)).errorRate)
        let needed = Int((2 * z * z * rate * (1 - rate) / pow(max(threshold, 1e-3) / 4, 2)).rounded(.up))
        return CanaryCriterion(
            name: "error rate increase", value: value, low: value - half, high: value + half, threshold: threshold, outcome: outcome,
            samples: CanaryFigures.total(strata.map(\.canary.requests)), needed: needed)
    }

    /// Shadow agreement: the share of the new version's compared requests that got the replaced version's label,
    /// per worker, combined; a normal interval with one agreement and one disagreement added. Its threshold is a
    /// minimum, unlike the others: it fails when the whole interval is below it and passes when all of it is at or
    /// above.
    static func agreement(_ strata: [CanaryStratum], minimum: Double) -> CanaryCriterion {
        let compared = strata.filter { $0.canary.shadowCompared > 0 }
        let weights = compared.map { Double($0.canary.shadowCompared) }
        let total = weights.reduce(0, +)
        var value = 0.0, variance = 0.0
        for (stratum, weight) in zip(compared, weights) {
            let share = weight / total, n = Double(stratum.canary.shadowCompared)
            value += share * Double(stratum.canary.shadowAgreed) / n
            let p = (Double(stratum.canary.shadowAgreed) + 1) / (n + 2)
            variance += share * share * p * (1 - p) / n
        }
        let half = total > 0 ? z * variance.squareRoot() : 1
        let outcome: CanaryCriterion.Outcome = total == 0 ? .undecided : value + half < minimum ? .fail : value - half >= minimum ? .pass : .undecided
        // Comparisons for a half-width of half the distance from the minimum to full agreement.
        let gap = max(1 - minimum, 0.01) / 2
        let needed = Int((z * z * 0.25 / (gap * gap)).rounded(.up))
        return CanaryCriterion(
            name: "shadow agreement", value: value, low: max(0, value - half), high: min(1, value + half), threshold: minimum,
            outcome: outcome, samples: CanaryFigures.total(compared.map(\.canary.shadowCompared)), needed: needed)
    }

    /// The label drift on the same workers: each worker's total variation distance, combined, bootstrapped.
    static func labelDrift(_ strata: [CanaryStratum], threshold: Double) -> CanaryCriterion {
        let weights = strata.map { Double(CanaryFigures.total($0.canary.labels.values)) }
        let (value, low, high) = LabelDriftBootstrap.estimate(strata.map { ($0.canary.labels, $0.baseline.labels) }, weights: weights, confidence: confidence)
        let outcome: CanaryCriterion.Outcome = low > threshold ? .fail : high <= threshold ? .pass : .undecided
        // Labelled requests for an expected sampling drift of a third of the threshold, at the replaced version's
        // label shares: that drift is Σ √(p(1−p)) / √(π·n).
        let shares = pooled(strata.map(\.baseline)).labels
        let count = Double(CanaryFigures.total(shares.values))
        let spread = shares.values.reduce(0.0) { sum, n in let p = Double(n) / max(count, 1); return sum + (p * (1 - p)).squareRoot() }
        let needed = Int((9 * spread * spread / (Double.pi * pow(max(threshold, 1e-3), 2))).rounded(.up))
        return CanaryCriterion(
            name: "label drift", value: value, low: low, high: high, threshold: threshold, outcome: outcome,
            samples: CanaryFigures.total(strata.map { CanaryFigures.total($0.canary.labels.values) }), needed: needed)
    }

    static func pooled(_ figures: [CanaryFigures]) -> CanaryFigures {
        figures.reduce(into: CanaryFigures()) { $0.add($1) }
    }

    static func weightedMean(_ values: [Double], _ weights: [Double]) -> Double {
        LabelDriftBootstrap.combined(values, weights.map { max($0, 1) })
    }
}
