import Synchronization

/// How an INT8 engine keeps FP32's labels: a classification row whose INT8 logits lie closer to a decision than
/// `factor` times the adapter's own INT8 error is answered by an FP32 pass instead.
///
/// The error is measured per adapter when it is first used (`InferenceEngine.calibrateLabelCheck`): both passes over
/// the calibration texts, the largest change INT8 makes to any difference of two logits (single-label) or to any
/// logit (multi-label). A head whose logits are ten times larger has ten times the error and so ten times the margin:
/// the test means the same for every classifier. Regression heads and embeddings have no label to keep.
///
/// The re-check's cost is bounded: the engine times its INT8 and FP32 passes, and an adapter whose recent rows were
/// re-checked more often than `breakEven` (where INT8 plus the re-checks would cost more than FP32 alone) has its
/// rows sent straight to the FP32 pass, with an INT8 probe every `probeEvery` batches to notice when that changes.
final class LabelCheck: Sendable {
    /// Tells this engine's figures apart in each adapter's `AdapterLabelCheck`.
    let id: UInt64
    private static let ids = Atomic<UInt64>(0)
    /// How many times the calibrated error a row's distance to a decision must be for INT8 to answer it.
    let factor: Float
    /// The prepared FP32 layers re-checked rows run on.
    let exact: ExecutionPlan
    /// The calibration texts' token ids.
    let calibration: [[Int32]]
    /// Batches of an adapter sent to FP32 between two INT8 probes.
    static let probeEvery = 16

    private struct Costs {
        /// Recent nanoseconds per token of each precision's passes (exponentially weighted), once measured.
        var int8: Double?
        var fp32: Double?
    }
    private let costs = Mutex(Costs())
    /// Weight of the newest pass in the cost averages.
    private static let smoothing = 0.1

    init(factor: Float, exact: ExecutionPlan, calibration: [[Int32]]) {
        id = Self.ids.add(1, ordering: .relaxed).newValue
        self.factor = factor
        self.exact = exact
        self.calibration = calibration
    }

    /// The share of re-checked rows above which FP32 alone is cheaper than INT8 plus re-checks: `1 − t8/t32` from the
    /// passes timed so far (one half until both were timed).
    var breakEven: Double {
        costs.withLock { costs in
            guard let int8 = costs.int8, let fp32 = costs.fp32, fp32 > 0 else { return 0.5 }
            return min(max(1 - int8 / fp32, 0), 1)
        }
    }

    /// Adds one timed pass of `tokens` tokens to the cost averages.
    func record(_ precision: Precision, tokens: Int, duration: Duration) {
        guard tokens > 0 else { return }
        let perToken = (Double(duration.components.seconds) * 1e9 + Double(duration.components.attoseconds) / 1e9) / Double(tokens)
        costs.withLock { costs in
            func blend(_ old: Double?) -> Double { old.map { $0 + Self.smoothing * (perToken - $0) } ?? perToken }
            if precision == .int8 { costs.int8 = blend(costs.int8) } else { costs.fp32 = blend(costs.fp32) }
        }
    }

    /// How close `logits` lie to a decision under `problem`: the top-two gap (single-label) or the smallest
    /// |logit| (multi-label: each label turns on at 0); nil where there is no label to keep.
    static func distance(of logits: [Float], problem: ClassifierHead.ProblemType) -> Float? {
        switch problem {
        case .regression: return nil
        case .multiLabel: return logits.map(abs).min()
        case .singleLabel:
            guard logits.count > 1 else { return nil }
            var first = -Float.infinity, second = -Float.infinity
            for value in logits {
                if value > first { (first, second) = (value, first) } else if value > second { second = value }
            }
            return first - second
        }
    }

    /// How far INT8 moved what `distance` measures: the largest change of a difference of two logits (the spread
    /// of the changes, single-label) or of one logit (multi-label).
    static func error(int8: [Float], fp32: [Float], problem: ClassifierHead.ProblemType) -> Float {
        let changes = zip(int8, fp32).map { $0 - $1 }
        guard let low = changes.min(), let high = changes.max() else { return 0 }
        return problem == .multiLabel ? max(abs(low), abs(high)) : high - low
    }
}

/// What an INT8 engine's label check has measured of one adapter (`InferenceEngine.labelCheckFigures(for:)`).
public struct LabelCheckFigures: Sendable, Equatable {
    /// The largest INT8 logit error on the calibration texts.
    public var calibratedError: Float?
    /// The share of the adapter's recent INT8 rows that needed the FP32 re-check.
    public var unsureRate: Double?
    /// Rows answered by the re-check since the adapter was first used.
    public var rechecked: Int
    /// Rows sent straight to FP32 since the adapter was first used.
    public var routedToFP32: Int
}

/// One row's output and how the INT8 label check answered it.
public struct CheckedOutput: Sendable {
    /// What the engine computed.
    public let output: InferenceOutput
    /// Which pass answered it.
    public let outcome: LabelCheckOutcome

    /// Pairs `output` with how it was answered.
    public init(output: InferenceOutput, outcome: LabelCheckOutcome) {
        self.output = output
        self.outcome = outcome
    }
}

/// Which pass answered a row.
public enum LabelCheckOutcome: Sendable, Equatable {
    /// The engine's own precision, without a check (an FP32 engine, an embedding, a regression, or checks off).
    case unchecked
    /// INT8, far enough from any decision to keep FP32's label.
    case kept
    /// INT8 was too close to a decision: the FP32 pass answered.
    case rechecked
    /// Sent straight to the FP32 pass: most of this adapter's recent rows needed the re-check.
    case routedToFP32

    /// Whether the FP32 pass answered.
    public var answeredInFP32: Bool { self == .rechecked || self == .routedToFP32 }
}
