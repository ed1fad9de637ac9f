import CEngineKernels

/// A base linear layer laid out for the engine's GEMM in one precision: FP32 weights transposed to `[in, out]`
/// (oneDNN's fastest layout for `x·W`, 2–3× faster than `x·Wᵀ` at a few rows), or INT8 weights `[in, out]` with a
/// scale and a column sum per output channel. Several layers sharing an input (Q, K, V) are concatenated so that
/// they run as one product.
final class PreparedLinear: @unchecked Sendable {
    /// Inputs per row.
    let inFeatures: Int
    /// Outputs per row (all concatenated layers).
    let outFeatures: Int
    /// The bias of every output.
    let bias: UnsafeMutablePointer<Float>
    /// FP32 `[in, out]`, when prepared for FP32.
    let weights: UnsafeMutablePointer<Float>?
    /// INT8 `[in, out]`, when prepared for INT8.
    let quantized: UnsafeMutablePointer<Int8>?
    /// Per-output scale of `quantized`.
    let scales: UnsafeMutablePointer<Float>?
    /// Per-output sum of `quantized` over the inputs (for the activations' zero points).
    let columnSums: UnsafeMutablePointer<Int32>?

    // Immutable after init, so sharing across threads is safe.
    /// INT8 weights use −`weightMaximum`…`weightMaximum` (`ExecutionRuntime.State.weightMaximum`).
    init(_ layers: [LinearWeights], precision: Precision, weightMaximum: Int32 = 127) {
        let inputs = layers[0].inFeatures
        precondition(layers.allSatisfy { $0.inFeatures == inputs }, "concatenated layers must share their input")
        let outputs = layers.reduce(0) { $0 + $1.outFeatures }
        inFeatures = inputs
        outFeatures = outputs
        bias = .allocate(capacity: outputs)
        var column = 0
        for layer in layers {
            if let b = layer.bias {
                (bias + column).update(from: b.pointer, count: layer.outFeatures)
            } else {
                (bias + column).initialize(repeating: 0, count: layer.outFeatures)
            }
            column += layer.outFeatures
        }
        switch precision {
        case .fp32:
            let w = UnsafeMutablePointer<Float>.allocate(capacity: inputs * outputs)
            column = 0
            for layer in layers {
                adk_transpose(layer.weight.pointer, Int64(layer.outFeatures), Int64(inputs), w + column, Int64(outputs))
                column += layer.outFeatures
            }
            weights = w
            quantized = nil
            scales = nil
            columnSums = nil
        case .int8:
            // Quantise each layer into its own [in, out] block, then interleave the blocks' columns.
            let q = UnsafeMutablePointer<Int8>.allocate(capacity: inputs * outputs)
            let s = UnsafeMutablePointer<Float>.allocate(capacity: outputs)
            let sums = UnsafeMutablePointer<Int32>.allocate(capacity: outputs)
            column = 0
            for layer in layers {
                let width = layer.outFeatures
                let block = UnsafeMutablePointer<Int8>.allocate(capacity: inputs * width)
                defer { block.deallocate() }
                adk_quantize_weights(layer.weight.pointer, Int64(width), Int64(inputs), weightMaximum, block, s + column, sums + column)
                for i in 0..<inputs { (q + i * outputs + column).update(from: block + i * width, count: width) }
                column += width
            }
            weights = nil
            quantized = q
            scales = s
            columnSums = sums
        }
    }

    /// Whether the product runs in INT8.
    var isQuantized: Bool { quantized != nil }

    /// Bytes this layer holds.
    var bytes: Int {
        outFeatures * 4 + (weights != nil ? inFeatures * outFeatures * 4 : inFeatures * outFeatures + outFeatures * 8)
    }

    deinit {
        bias.deallocate()
        weights?.deallocate()
        quantized?.deallocate()
        scales?.deallocate()
        columnSums?.deallocate()
    }
}
