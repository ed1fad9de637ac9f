import CanaryJudging
import Testing

@Suite("CanaryJudge")
struct CanaryJudgeTests {
    static let baseline = CanaryFigures(requests: 100, errors: 1, p95Ms: 10, labels: ["a": 50, "b": 50], meanConfidence: 0.9)

    @Test("a canary that serves like the version it replaces passes")
    func likeForLikePasses() {
        let canary = CanaryFigures(requests: 100, errors: 2, p95Ms: 12, labels: ["a": 55, "b": 45], meanConfidence: 0.85)
        #expect(CanaryJudge.violation(of: canary, against: Self.baseline, named: "v1", thresholds: CanaryThresholds()) == nil)
    }

    @Test("each threshold stops a canary that breaks it alone, and says which")
    func eachThresholdStops() {
        let cases: [(CanaryFigures, String)] = [
            (CanaryFigures(requests: 100, errors: 10, p95Ms: 10, labels: ["a": 50, "b": 50], meanConfidence: 0.9), "error rate"),
            (CanaryFigures(requests: 100, errors: 1, p95Ms: 16, labels: ["a": 50, "b": 50], meanConfidence: 0.9), "p95 latency"),
            (CanaryFigures(requests: 100, errors: 1, p95Ms: 10, labels: ["a": 90, "b": 10], meanConfidence: 0.9), "drifted"),
            (CanaryFigures(requests: 100, errors: 1, p95Ms: 10, labels: ["a": 50, "b": 50], meanConfidence: 0.6), "confidence"),
        ]
        for (canary, expected) in cases {
            let reason = CanaryJudge.violation(of: canary, against: Self.baseline, named: "v1", thresholds: CanaryThresholds())
            #expect(reason?.contains(expected) == true && reason?.contains("v1") == true, "\(expected): \(reason ?? "passed")")
        }
    }

    @Test("a version is judged only once both sides served the minimum")
    func minimumBeforeJudging() {
        let few = CanaryFigures(requests: 49, errors: 49, p95Ms: 100)
        #expect(!CanaryJudge.canJudge(few, against: Self.baseline, thresholds: CanaryThresholds()))
        #expect(CanaryJudge.canJudge(Self.baseline, against: Self.baseline, thresholds: CanaryThresholds()))
    }

    @Test("counts from a hostile report saturate instead of trapping, and negative counts count as none")
    func hostileCountsSaturate() {
        var total = CanaryFigures(requests: .max, errors: -5, p95Ms: .nan, labels: ["a": .max], meanConfidence: .infinity)
        total.add(CanaryFigures(requests: .max, errors: .max, p95Ms: 3, labels: ["a": 1, "b": -1]))
        #expect(total.requests == .max && total.errors == .max && total.p95Ms == 3)
        #expect(total.labels["a"] == .max && total.labels["b"] == 0 && total.meanConfidence == nil)
        #expect(total.labelDrift(from: Self.baseline) != nil)
    }

    @Test("a verdict over workers whose reports claim Int.max of everything is judged without overflowing")
    func hostileStrataAreJudged() {
        var hostile = CanaryFigures(requests: .max, errors: .max, p95Ms: 1, labels: ["a": .max, "b": .max, "c": .max], meanConfidence: 1)
        hostile.shadowCompared = .max
        hostile.shadowAgreed = .max
        let strata = (0..<3).map { CanaryStratum(worker: "w\($0)", canary: hostile, baseline: hostile) }
        let verdict = CanaryJudge.verdict(strata, named: "v1", thresholds: CanaryThresholds(minAgreement: 0.9), final: true)
        #expect(verdict.criteria.count == 5 && verdict.criteria.allSatisfy { $0.samples == .max || $0.name == "p95 latency ratio" || $0.name == "confidence drop" })
    }
}
