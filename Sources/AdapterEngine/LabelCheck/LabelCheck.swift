import Synchronization

/// How an INT8 (or BF16) engine keeps FP32's labels: a classification row whose logits lie closer to a decision than
/// `factor` times the adapter's own error in that precision is answered by a more exact pass instead: first BF16
/// where the CPU has BF16 dot products (twice FP32's speed, about a tenth of INT8's error), then FP32.
///
/// The error is measured per adapter and pass when the adapter is first used (`InferenceEngine.calibrateLabelCheck`):
/// each pass and FP32 over the calibration texts, the largest change the pass makes to any difference of two logits
/// (single-label) or to any logit (multi-label). A head whose logits are ten times larger has ten times the error and
/// so ten times the margin: the test means the same for every classifier. Regression heads and embeddings have no
/// label to keep.
///
/// The re-checks' cost is bounded: the engine times its passes per token, and an adapter's rows start at the pass
/// whose expected cost, re-checks included, is lowest for the share of its recent rows each pass left unsure (rows of
/// a head whose answers are near ties go straight to BF16 or FP32). A pass below the rows' start is not run to learn
/// its share: a row counts as one it would have left unsure when the answer lies within that pass's threshold of a
/// decision, so the start follows the traffic from every batch's answers.
final class LabelCheck: Sendable {
    /// Tells this engine's figures apart in each adapter's `AdapterLabelCheck`.
    let id: UInt64
    private static let ids = Atomic<UInt64>(0)
    /// How many times the calibrated error a row's distance to a decision must be for a pass to answer it.
    let factor: Float
    /// The passes a row climbs, cheapest first: the engine's own plan, then more exact ones; the last (FP32) answers
    /// every row that reaches it.
    let passes: [ExecutionPlan]
    /// The calibration texts' token ids.
    let calibration: [[Int32]]

    /// Recent nanoseconds per token of each pass (exponentially weighted), once measured.
    private let costs: Mutex<[Double?]>
    /// Weight of the newest pass in the cost averages.
    private static let smoothing = 0.1

    /// A check whose rows climb `passes` (the engine's plan first, FP32 last).
    init(factor: Float, passes: [ExecutionPlan], calibration: [[Int32]]) {
        precondition(passes.count >= 2 && passes.last?.precision == .fp32, "a label check ends in an FP32 pass")
        id = Self.ids.add(1, ordering: .relaxed).newValue
        self.factor = factor
        self.passes = passes
        self.calibration = calibration
        costs = Mutex([Double?](repeating: nil, count: passes.count))
    }

    /// The FP32 pass.
    var exact: ExecutionPlan { passes[passes.count - 1] }

    /// The passes that check their rows (all but the last).
    var checkedPasses: Range<Int> { 0..<(passes.count - 1) }

    /// Each pass's cost per token, as timed so far; before a pass was timed, a guess from the GEMMs' rates (INT8 four
    /// times, BF16 twice FP32's), relative to the timed ones.
    var passCosts: [Double] {
        let timed = costs.withLock { $0 }
        func share(_ precision: Precision) -> Double {
            switch precision {
            case .int8: 0.3
            case .bf16: 0.55
            case .fp32: 1
            }
        }
        // A scale from any timed pass, so that guesses and timings compare.
        let scale = zip(timed, passes).compactMap { cost, plan in cost.map { $0 / share(plan.precision) } }.first ?? 1
        return zip(timed, passes).map { cost, plan in cost ?? share(plan.precision) * scale }
    }

    /// Adds one timed pass `index` of `tokens` tokens to the cost averages.
    func record(pass index: Int, tokens: Int, duration: Duration) {
        guard tokens > 0 else { return }
        let perToken = duration.inSeconds * 1e9 / Double(tokens)
        costs.withLock { costs in
            costs[index] = costs[index].map { $0 + Self.smoothing * (perToken - $0) } ?? perToken
        }
    }

    /// The pass to start rows at, for the share `unsure[i]` of an adapter's rows each checked pass leaves unsure (of
    /// all its rows: those an earlier pass kept count as sure, since every later pass errs less): the one whose
    /// expected cost per token is lowest, `costs[s] + Σ_{j>s} unsure[j−1] · costs[j]`, the rows a pass leaves unsure
    /// climbing to the next.
    static func cheapestStart(costs: [Double], unsure: [Double]) -> Int {
        var best = (pass: 0, cost: Double.infinity)
        for start in costs.indices {
            var expected = costs[start]
            for next in (start + 1)..<costs.count { expected += min(max(unsure[next - 1], 0), 1) * costs[next] }
            // Ties go to the cheaper first pass: it keeps measuring the rate.
            if expected < best.cost { best = (start, expected) }
        }
        return best.pass
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

    /// How far a pass moved what `distance` measures from FP32's: the largest change of a difference of two logits (the spread
    /// of the changes, single-label) or of one logit (multi-label).
    static func error(_ approximate: [Float], exact: [Float], problem: ClassifierHead.ProblemType) -> Float {
        let changes = zip(approximate, exact).map { $0 - $1 }
        guard let low = changes.min(), let high = changes.max() else { return 0 }
        return problem == .multiLabel ? max(abs(low), abs(high)) : high - low
    }
}

/// What an engine's label check has measured of one adapter (`InferenceEngine.labelCheckFigures(for:)`).
public struct LabelCheckFigures: Sendable, Equatable {
    /// One checked pass's figures.
    public struct Pass: Sendable, Equatable {
        /// The pass's precision.
        public var precision: Precision
        /// Its largest logit error against FP32 on the calibration texts.
        public var calibratedError: Float
        /// The share of the adapter's recent rows this pass left unsure (rows started past it count where their answer
        /// lies within its threshold of a decision).
        public var unsureRate: Double?
    }

    /// The checked passes, the engine's own first (then BF16, where the CPU has it before FP32).
    public var passes: [Pass]
    /// Rows answered by a more exact pass after the engine's was unsure, since the adapter was first used.
    public var rechecked: Int
    /// Rows started past the engine's pass (most of the adapter's recent rows needed it) since it was first used.
    public var routed: Int

    /// The engine's own pass's calibrated error.
    public var calibratedError: Float? { passes.first?.calibratedError }
    /// The share of the adapter's recent rows the engine's own pass left (or would have left) unsure.
    public var unsureRate: Double? { passes.first?.unsureRate }
}

/// One row's output and how the label check answered it.
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
    /// The engine's own precision, far enough from any decision to keep FP32's label.
    case kept
    /// The engine's pass was too close to a decision: a more exact pass in this precision answered.
    case rechecked(Precision)
    /// Sent straight to a more exact pass, which answered in this precision: most of this adapter's recent rows needed it.
    case routed(Precision)

    /// Whether a more exact pass than the engine's own answered.
    public var answeredByRecheck: Bool { answeredIn != nil }

    /// The precision of the more exact pass that answered, if one did.
    public var answeredIn: Precision? {
        switch self {
        case .unchecked, .kept: nil
        case .rechecked(let precision), .routed(let precision): precision
        }
    }
}
