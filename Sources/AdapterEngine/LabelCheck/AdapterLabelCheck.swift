import Synchronization

/// What INT8 engines have learnt about one adapter's labels: per engine, how far its INT8 moves the adapter's logits
/// (measured once, on the calibration texts) and how often the adapter's rows needed the FP32 re-check lately. Held
/// by the adapter, so that it lives and dies with that version; it changes only how fast a row is answered, never
/// the answer.
public final class AdapterLabelCheck: Sendable {
    /// One engine's figures for the adapter.
    struct State {
        /// The largest INT8 logit error on the calibration texts (`LabelCheck.error(int8:fp32:problem:)`).
        var calibratedError: Float?
        /// Recent rows checked in INT8 and those of them re-run in FP32, decayed so that the rate follows the traffic.
        var checked = 0.0
        var unsure = 0.0
        /// Batches sent straight to FP32 since the last INT8 probe.
        var sinceProbe = 0
        var rechecked = 0
        var routed = 0
    }

    /// Rows after which the recent counts are halved: the rate reflects roughly the last 64 checked rows.
    static let window = 64.0

    /// By `LabelCheck.id`: engines of other precisions or kernel paths make other errors.
    private let states = Mutex<[UInt64: State]>([:])

    init() {}

    /// Engine `engine`'s figures.
    func state(_ engine: UInt64) -> State? { states.withLock { $0[engine] } }

    /// Rows the calibration's share of unsure rows counts as: the first estimate of the rate, which real traffic
    /// (the calibration texts are nobody's domain) soon outweighs.
    static let calibrationWeight = 2.0

    /// Keeps the calibration's result: the largest error, and how many of the `rows` calibration rows the check
    /// would have re-run (`unsure`), as the first estimate of the rate before any traffic.
    func calibrated(_ engine: UInt64, error: Float, rows: Int, unsure: Int) {
        states.withLock { states in
            guard states[engine]?.calibratedError == nil else { return }
            var state = states[engine] ?? State()
            state.calibratedError = error
            state.checked = Self.calibrationWeight
            state.unsure = Self.calibrationWeight * Double(unsure) / Double(max(rows, 1))
            states[engine] = state
        }
    }

    /// Raises the calibrated error to `error` when that is larger (the adapter's merged layers err differently).
    func raiseCalibratedError(_ engine: UInt64, to error: Float) {
        states.withLock { states in
            guard let calibrated = states[engine]?.calibratedError, calibrated < error else { return }
            states[engine]?.calibratedError = error
        }
    }

    /// Counts one INT8 batch's rows of this adapter: `checked` rows, `unsure` of them re-run in FP32.
    func record(_ engine: UInt64, checked: Int, unsure: Int) {
        states.withLock { states in
            var state = states[engine] ?? State()
            state.checked += Double(checked)
            state.unsure += Double(unsure)
            state.rechecked += unsure
            state.sinceProbe = 0
            if state.checked > Self.window {
                state.checked /= 2
                state.unsure /= 2
            }
            states[engine] = state
        }
    }

    /// Whether this batch's `rows` rows of the adapter go straight to FP32 on engine `engine`: when more of its
    /// recent rows needed the re-check than `breakEven` (where an INT8 pass plus the re-checks costs what one FP32
    /// pass does), except every `probeEvery`-th such batch, which runs in INT8 to see whether the traffic changed.
    func routesToFP32(_ engine: UInt64, rows: Int, breakEven: Double, probeEvery: Int) -> Bool {
        states.withLock { states in
            guard var state = states[engine], state.checked > 0, state.unsure / state.checked > breakEven else { return false }
            state.sinceProbe += 1
            defer { states[engine] = state }
            guard state.sinceProbe < probeEvery else { return false }
            state.routed += rows
            return true
        }
    }
}
