import Synchronization

/// What engines' label checks have learnt about one adapter's labels: per engine and checked pass, how far the pass
/// moves the adapter's logits from FP32's (measured once, on the calibration texts) and how often the adapter's rows
/// were left unsure by it lately. Held by the adapter, so that it lives and dies with that version; it changes only
/// how fast a row is answered, never the answer.
public final class AdapterLabelCheck: Sendable {
    /// One engine's figures for the adapter, by checked pass (`LabelCheck.checkedPasses`).
    struct State {
        /// The largest logit error of each checked pass on the calibration texts (`LabelCheck.error`).
        var calibratedErrors: [Float]?
        /// Recent rows counted for each pass and those of them it left (or would have left) unsure, decayed so that
        /// the rate follows the traffic.
        var checked: [Double] = []
        var unsure: [Double] = []
        var rechecked = 0
        var routed = 0

        /// The share of recent rows pass `index` left unsure (nil before any).
        func unsureRate(_ index: Int) -> Double? {
            guard index < checked.count, checked[index] > 0 else { return nil }
            return unsure[index] / checked[index]
        }
    }

    /// Rows after which a pass's recent counts are halved: the rate reflects roughly its last 64 checked rows.
    static let window = 64.0

    /// By `LabelCheck.id`: engines of other precisions or kernel paths make other errors.
    private let states = Mutex<[UInt64: State]>([:])

    init() {}

    /// Engine `engine`'s figures.
    func state(_ engine: UInt64) -> State? { states.withLock { $0[engine] } }

    /// Rows the calibration's share of unsure rows counts as: the first estimate of the rate, which real traffic
    /// (the calibration texts are nobody's domain) soon outweighs.
    static let calibrationWeight = 2.0

    /// Keeps the calibration's result: each checked pass's largest error, and how many of the `rows` calibration rows
    /// it would have left unsure (`unsure`), as the first estimate of its rate before any traffic.
    func calibrated(_ engine: UInt64, errors: [Float], rows: Int, unsure: [Int]) {
        states.withLock { states in
            guard states[engine]?.calibratedErrors == nil else { return }
            var state = states[engine] ?? State()
            state.calibratedErrors = errors
            state.checked = errors.map { _ in Self.calibrationWeight }
            state.unsure = unsure.map { Self.calibrationWeight * Double($0) / Double(max(rows, 1)) }
            states[engine] = state
        }
    }

    /// Raises each calibrated error to the one in `errors` where that is larger (the adapter's merged layers err
    /// differently).
    func raiseCalibratedErrors(_ engine: UInt64, to errors: [Float]) {
        states.withLock { states in
            guard let calibrated = states[engine]?.calibratedErrors, calibrated.count == errors.count else { return }
            states[engine]?.calibratedErrors = zip(calibrated, errors).map { max($0, $1) }
        }
    }

    /// Counts one batch's rows of this adapter: for each checked pass, `checked[pass]` rows, `unsure[pass]` of them
    /// left unsure by it (or, for a pass below the rows' start, lying within its threshold of a decision).
    func record(_ engine: UInt64, checked: [Int], unsure: [Int]) {
        states.withLock { states in
            guard var state = states[engine], checked.count == state.checked.count, unsure.count == state.unsure.count else { return }
            for pass in state.checked.indices {
                state.checked[pass] += Double(checked[pass])
                state.unsure[pass] += Double(unsure[pass])
                if state.checked[pass] > Self.window {
                    state.checked[pass] /= 2
                    state.unsure[pass] /= 2
                }
            }
            states[engine] = state
        }
    }

    /// Counts rows answered by a more exact pass: `rechecked` after the engine's own was unsure, `routed` started there.
    func answered(_ engine: UInt64, rechecked: Int, routed: Int) {
        states.withLock { states in
            states[engine]?.rechecked += rechecked
            states[engine]?.routed += routed
        }
    }

    /// The pass this batch's rows of the adapter start at on engine `engine`, for passes costing `costs` per token:
    /// `LabelCheck.cheapestStart` on the recent rates.
    func startingPass(_ engine: UInt64, costs: [Double]) -> Int {
        states.withLock { states in
            guard let state = states[engine], state.calibratedErrors != nil else { return 0 }
            return LabelCheck.cheapestStart(costs: costs, unsure: state.checked.indices.map { state.unsureRate($0) ?? 0 })
        }
    }
}
