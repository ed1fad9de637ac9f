/// One worker's figures for a new version and for the version it replaced there: the unit the judge compares like
/// with like, since each worker sees its own mix of requests.
public struct CanaryStratum: Sendable, Equatable {
    /// The worker (for reasons and reports).
    public var worker: String
    /// The new version's figures on it.
    public var canary: CanaryFigures
    /// The replaced version's figures on it.
    public var baseline: CanaryFigures

    /// Pairs the two versions' figures on `worker`.
    public init(worker: String, canary: CanaryFigures, baseline: CanaryFigures) {
        self.worker = worker
        self.canary = canary
        self.baseline = baseline
    }
}
