import Foundation

/// SmoothQuant's per-input-channel smoothing for the INT8 products (Xiao et al., 2023): a few channels of BERT's
/// LayerNorm outputs are far larger than the rest, and with one scale per row they take most of the 8-bit range.
/// Dividing channel j of the input by `s_j` and multiplying row j of the weights by it leaves the product unchanged
/// in exact arithmetic and moves part of the range problem from the activations to the weights, which have a scale
/// per output channel. `s_j = max|x_j|^α / max|W_j|^(1−α)` with α = 0.5, where `max|x_j|` is measured by one FP32
/// pass over `Smoothing.calibrationTexts` when the INT8 plan is built.
///
/// Measured on the 20 fixture texts (none of them in the calibration set): the worst sentence-embedding cosine to
/// FP32 went from 0.9935 to 0.9960, and the largest classifier-logit error on the reference adapters from 0.23 to
/// 0.09.
enum Smoothing {
    /// How much of the range moves to the weights.
    static let alpha: Float = 0.5

    /// The products whose inputs are smoothed, by position in a layer (0 Q/K/V, 1 attention output, 2 intermediate,
    /// 3 output): the two fed by LayerNorm.
    static let smoothedInputs: Set<Int> = [0, 2]

    /// General English of several registers, none from any test or reference set: what the base model sees. The
    /// channels that carry outliers in BERT models are the same for any text (they follow `[CLS]`, `[SEP]` and
    /// punctuation), so a few sentences find them.
    static let calibrationTexts = [
        "The meeting was moved to Thursday afternoon because two of the speakers missed their flights.",
        "Preheat the oven to 200 degrees, then bake the bread for forty minutes until the crust is golden.",
        "Temperature in the north hall rose above 31°C at 14:05; the fan controller did not respond.",
        "Can you tell me how to reset my password? The link in the e-mail has already expired.",
        "Shares fell 4.2% after the company cut its forecast for the second time this year.",
        "The patient reported mild headaches and dizziness, mostly in the morning, for about two weeks.",
        "He scored twice in the second half, and the team moved up to third place in the league.",
        "Please ship the replacement part to the Hamburg warehouse, order #58213, before Friday!",
        "Rain is expected over the weekend, with strong winds along the coast and snow in the mountains.",
        "I loved the first season, but honestly the ending felt rushed and the new characters were flat.",
        "Under the agreement, either party may terminate the contract with ninety days' written notice.",
        "sensor 7 vibration 0.82 g rms, bearing temp 67 c, rpm 1480 — maintenance window requested",
    ]

    /// The largest magnitude of each input channel of each product, recorded during a calibration pass.
    final class Observer {
        private(set) var maxima: [ObjectIdentifier: [Float]] = [:]

        /// Takes `rows` rows of `layer`'s input (`layer.inFeatures` wide).
        func record(_ layer: PreparedLinear, input: UnsafePointer<Float>, rows: Int) {
            let width = layer.inFeatures
            var maximum = maxima[ObjectIdentifier(layer)] ?? [Float](repeating: 0, count: width)
            for row in 0..<rows {
                for column in 0..<width { maximum[column] = max(maximum[column], abs(input[row * width + column])) }
            }
            maxima[ObjectIdentifier(layer)] = maximum
        }

        /// The maxima recorded for `layer`.
        func maxima(for layer: PreparedLinear) -> [Float]? { maxima[ObjectIdentifier(layer)] }
    }

    /// `s_j` for each input channel of `layers` (concatenated outputs sharing one input), from the input's maxima.
    static func factors(inputMaxima: [Float], layers: [LinearWeights]) -> [Float] {
        let inputs = inputMaxima.count
        var weightMaxima = [Float](repeating: 0, count: inputs)
        for layer in layers {
            let w = layer.weight.pointer
            for output in 0..<layer.outFeatures {
                for column in 0..<inputs { weightMaxima[column] = max(weightMaxima[column], abs(w[output * inputs + column])) }
            }
        }
        return zip(inputMaxima, weightMaxima).map { x, w in
            guard x > 0, w > 0 else { return 1 }
            let s = powf(x, alpha) / powf(w, 1 - alpha)
            return s.isFinite && s > 1e-5 ? s : 1
        }
    }
}
