import AdapterEngine
import AdapterRuntime
import Foundation
import Synchronization

/// Shadow comparison: after an activation that asked for it, a sampled fraction of the new version's requests also
/// runs on the version it replaced, and the two outputs are compared (label agreement, logit differences, embedding
/// cosine, confidence). Off the reply path: a request is only sampled and queued here; the comparison runs later on
/// one idle-priority thread without the OpenMP team, between requests (as adapter smoke tests do), and at most
/// `capacity` wait, the rest are dropped and counted. What a version does differently, not how its labels are
/// spread, is what a fleet rollout's agreement criterion needs: a version that permutes labels keeps their
/// distribution and agrees on almost nothing.
final class ShadowComparer: Sendable {
    /// What one name's active version is compared with.
    struct Plan: Sendable, Equatable {
        let version: String
        let against: String
        let fraction: Double
    }

    /// One request to compare.
    struct Job: Sendable {
        let name: String
        let version: String
        let against: String
        let ids: [Int32]
        let typeIds: [Int32]?
        let output: InferenceOutput
    }

    /// Comparisons that may wait at once; more are dropped (counted) rather than queued without bound.
    static let capacity = 8

    private let plans = Mutex<[String: Plan]>([:])
    private let jobs: AsyncStream<Job>
    private let queue: AsyncStream<Job>.Continuation

    init() {
        (jobs, queue) = AsyncStream.makeStream(of: Job.self, bufferingPolicy: .bufferingOldest(Self.capacity))
    }

    /// From now on, `fraction` of (name, version)'s requests are compared with `against` (0 or no `against`: none).
    func plan(name: String, version: String, against: String?, fraction: Double) {
        plans.withLock { plans in
            if let against, fraction > 0, against != version {
                plans[name] = Plan(version: version, against: against, fraction: min(fraction, 1))
            } else {
                plans[name] = nil
            }
        }
    }

    /// The plan for `name`, if any.
    func plan(for name: String) -> Plan? { plans.withLock { $0[name] } }

    /// Samples one served request of (name, version); returns false when it was sampled but the queue was full.
    @discardableResult
    func offer(name: String, version: String, ids: [Int32], typeIds: [Int32]?, output: InferenceOutput) -> Bool {
        guard let plan = plan(for: name), plan.version == version, Double.random(in: 0..<1) < plan.fraction else { return true }
        if case .dropped = queue.yield(Job(name: name, version: version, against: plan.against, ids: ids, typeIds: typeIds, output: output)) { return false }
        return true
    }

    /// Runs the queued comparisons until the worker stops: each with `compare`, one at a time.
    func run(_ compare: (Job) async -> Void) async {
        for await job in jobs { await compare(job) }
    }

    /// Ends `run` (the worker is stopping).
    func finish() { queue.finish() }

    /// How the replaced version's `before` output compares with the new `after`.
    static func comparison(after: InferenceOutput, before: InferenceOutput) -> ShadowComparison? {
        switch (after, before) {
        case let (.classification(new, _, newLabel), .classification(old, _, oldLabel)) where new.count == old.count:
            let deltas = zip(new, old).map { abs($0 - $1) }
            return ShadowComparison(
                agreed: newLabel == oldLabel, maxAbsLogitDelta: Double(deltas.max() ?? 0),
                confidenceChange: (InferenceHandlers.topProbability(new) ?? 0) - (InferenceHandlers.topProbability(old) ?? 0), cosine: nil)
        case let (.embedding(new), .embedding(old)) where new.count == old.count:
            var dot: Float = 0, a: Float = 0, b: Float = 0
            for (x, y) in zip(new, old) { dot += x * y; a += x * x; b += y * y }
            return ShadowComparison(agreed: nil, maxAbsLogitDelta: nil, confidenceChange: nil, cosine: Double(dot / max((a * b).squareRoot(), 1e-12)))
        default:
            return nil
        }
    }
}

/// One shadow comparison's figures.
struct ShadowComparison: Sendable {
    /// Whether both versions gave the same label (classifiers).
    let agreed: Bool?
    /// The largest |logit difference| (classifiers).
    let maxAbsLogitDelta: Double?
    /// New top-1 probability minus the old one (classifiers).
    let confidenceChange: Double?
    /// Cosine between the embeddings (embedding adapters).
    let cosine: Double?
}
