import CEngineKernels

/// A base linear layer laid out for the engine's GEMM in one precision: FP32 weights transposed to `[in, out]` and
/// packed in panels for `adk_panel_gemm` (or, when the outputs are not a whole number of panels, left `[in, out]`
/// for oneDNN, its fastest layout for `x·W`: 2–3× faster than `x·Wᵀ` at a few rows), INT8 weights packed for
/// `PackedMatmul.int8` with a scale and a column sum per output channel, or BF16 weights packed for
/// `PackedMatmul.bf16`. Several layers sharing an input (Q, K, V) are concatenated so that they run as one product.
final class PreparedLinear: @unchecked Sendable {
    /// Inputs per row.
    let inFeatures: Int
    /// Outputs per row (all concatenated layers).
    let outFeatures: Int
    /// The bias of every output.
    let bias: UnsafeMutablePointer<Float>
    /// FP32 `[in, out]`, packed in panels when `panelled`, when prepared for FP32.
    let weights: UnsafeMutablePointer<Float>?
    /// The number format the layer multiplies in.
    let precision: Precision
    /// INT8 or BF16 weights packed for `PackedMatmul`, when prepared for either.
    let packed: PackedWeights?
    /// Per-output scale of the INT8 weights.
    let scales: UnsafeMutablePointer<Float>?
    /// Per-output sum of the INT8 weights over the inputs (for the activations' zero points); exact in Float
    /// (at most 127 · inputs).
    let columnSums: UnsafeMutablePointer<Float>?
    /// INT8 only, with smoothing: `1 / s_j` for each input channel, applied while the input is quantised
    /// (`Smoothing`); the weights hold row j multiplied by `s_j`.
    let inputMultipliers: UnsafeMutablePointer<Float>?

    // Immutable after init, so sharing across threads is safe.
    /// INT8 weights use −`weightMaximum`…`weightMaximum` (`ExecutionRuntime.State.weightMaximum`); `smoothing`
    /// (INT8 only) holds `Smoothing`'s factor for each input channel.
    init(_ layers: [LinearWeights], precision: Precision, weightMaximum: Int32 = 127, smoothing: [Float]? = nil) {
        let inputs = layers[0].inFeatures
        inFeatures = inputs
        outFeatures = layers.reduce(0) { $0 + $1.outFeatures }
        self.precision = precision
        bias = Self.concatenatedBias(layers)
        let outputs = outFeatures
        switch precision {
        case .fp32:
            let w = Self.transposed(layers, inputs: inputs, outputs: outputs)
            if Self.fillsPanels(outputs) {
                let panels = UnsafeMutablePointer<Float>.allocate(capacity: inputs * outputs)
                adk_pack_panels(w, Int64(inputs), Int64(outputs), panels)
                w.deallocate()
                weights = panels
            } else {
                weights = w
            }
            packed = nil
            scales = nil
            columnSums = nil
            inputMultipliers = nil
        case .bf16:
            let w = Self.transposed(layers, inputs: inputs, outputs: outputs)
            defer { w.deallocate() }
            let converted = UnsafeMutablePointer<UInt16>.allocate(capacity: inputs * outputs)
            defer { converted.deallocate() }
            adk_convert_bf16(1, w, Int64(outputs), Int64(inputs), Int64(outputs), converted, Int64(outputs))
            weights = nil
            packed = PackedMatmul.bf16.pack(converted, inputs: inputs, outputs: outputs)
            scales = nil
            columnSums = nil
            inputMultipliers = nil
        case .int8:
            // Quantise each layer into its own [in, out] block, then interleave the blocks' columns.
            let q = UnsafeMutablePointer<Int8>.allocate(capacity: inputs * outputs)
            let s = UnsafeMutablePointer<Float>.allocate(capacity: outputs)
            let sums = UnsafeMutablePointer<Int32>.allocate(capacity: outputs)
            defer { sums.deallocate() }
            var column = 0
            for layer in layers {
                let width = layer.outFeatures
                let block = UnsafeMutablePointer<Int8>.allocate(capacity: inputs * width)
                defer { block.deallocate() }
                if let smoothing {
                    let smoothed = UnsafeMutablePointer<Float>.allocate(capacity: inputs * width)
                    defer { smoothed.deallocate() }
                    for output in 0..<width {
                        for input in 0..<inputs {
                            smoothed[output * inputs + input] = layer.weight.pointer[output * inputs + input] * smoothing[input]
                        }
                    }
                    adk_quantize_weights(smoothed, Int64(width), Int64(inputs), weightMaximum, block, s + column, sums + column)
                } else {
                    adk_quantize_weights(layer.weight.pointer, Int64(width), Int64(inputs), weightMaximum, block, s + column, sums + column)
                }
                for i in 0..<inputs { (q + i * outputs + column).update(from: block + i * width, count: width) }
                column += width
            }
            weights = nil
            packed = PackedMatmul.int8.pack(q, inputs: inputs, outputs: outputs)
            q.deallocate()
            scales = s
            let floatSums = UnsafeMutablePointer<Float>.allocate(capacity: outputs)
            for index in 0..<outputs { floatSums[index] = Float(sums[index]) }
            columnSums = floatSums
            inputMultipliers = smoothing.map { factors in
                let multipliers = UnsafeMutablePointer<Float>.allocate(capacity: inputs)
                for index in 0..<inputs { multipliers[index] = 1 / factors[index] }
                return multipliers
            }
        }
    }

    /// `layers` (`[out, in]` each) transposed side by side into one `[in, outputs]` matrix the caller frees.
    private static func transposed(_ layers: [LinearWeights], inputs: Int, outputs: Int) -> UnsafeMutablePointer<Float> {
        let w = UnsafeMutablePointer<Float>.allocate(capacity: inputs * outputs)
        var column = 0
        for layer in layers {
            adk_transpose(layer.weight.pointer, Int64(layer.outFeatures), Int64(inputs), w + column, Int64(outputs))
            column += layer.outFeatures
        }
        return w
    }

    private static func concatenatedBias(_ layers: [LinearWeights]) -> UnsafeMutablePointer<Float> {
        precondition(layers.allSatisfy { $0.inFeatures == layers[0].inFeatures }, "concatenated layers must share their input")
        let outputs = layers.reduce(0) { $0 + $1.outFeatures }
        let bias = UnsafeMutablePointer<Float>.allocate(capacity: outputs)
        var column = 0
        for layer in layers {
            if let b = layer.bias {
                (bias + column).initialize(from: b.pointer, count: layer.outFeatures)
            } else {
                (bias + column).initialize(repeating: 0, count: layer.outFeatures)
            }
            column += layer.outFeatures
        }
        return bias
    }

    /// `output[rows × outFeatures] = input · Wᵀ` (no bias) in FP32, from the prepared weights; `isa` picks the panel
    /// GEMM's kernels.
    func multiplyFP32(rows: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, isa: Int32) {
        if let weights, panelled {
            if rows >= Self.panelGEMMRows(isa: isa),
               let unpacked = adk_unpack_panels(weights, Int64(inFeatures), Int64(outFeatures)) {
                // Many rows: oneDNN's GEMM (which blocks its inputs for the cache) on the weights unpacked for this call.
                GEMM.sgemm(
                    m: rows, n: outFeatures, k: inFeatures, a: input, lda: inFeatures, b: unpacked, ldb: outFeatures,
                    transposeB: false, beta: 0, c: output, ldc: outFeatures)
                return
            }
            adk_panel_gemm(
                isa, Int64(rows), Int64(inFeatures), Int64(outFeatures), input, Int64(inFeatures), weights, output,
                Int64(outFeatures))
            return
        }
        guard let weights else { preconditionFailure("an FP32 product on weights prepared for INT8") }
        GEMM.sgemm(
            m: rows, n: outFeatures, k: inFeatures, a: input, lda: inFeatures, b: weights, ldb: outFeatures,
            transposeB: false, beta: 0, c: output, ldc: outFeatures)
    }

    /// Whether FP32 weights with `outputs` columns are packed in panels: when they make whole panels.
    private static func fillsPanels(_ outputs: Int) -> Bool { outputs % Int(adk_panel_width()) == 0 }

    /// Whether `weights` are packed for `adk_panel_gemm`.
    private var panelled: Bool { weights != nil && Self.fillsPanels(outFeatures) }

    /// Rows from which a panelled product runs on oneDNN instead (`multiplyFP32`), for the kernels of `isa`.
    /// Unpacking costs a pass over the weights: 10% of a 512-row pass here, 4% of a 1,664-row one, where oneDNN's
    /// GEMM was 15% faster than the AVX-512 panel GEMM. The AVX2 and baseline copies (6-row register tiles) were
    /// already 14% slower than oneDNN at 512 rows (Benchmarks/README.md, "The FP32 GEMM").
    static func panelGEMMRows(isa: Int32) -> Int {
        isa >= Int32(ADK_ISA_AVX512.rawValue) ? 1024 : 64
    }

    /// Whether the product runs in INT8.
    var isQuantized: Bool { precision == .int8 }

    /// Bytes this layer holds.
    var bytes: Int {
        switch precision {
        case .fp32: outFeatures * 4 + inFeatures * outFeatures * 4
        case .bf16: outFeatures * 4 + (packed?.bytes ?? 0)
        case .int8: outFeatures * 4 + (packed?.bytes ?? 0) + outFeatures * 8
        }
    }

    deinit {
        bias.deallocate()
        weights?.deallocate()
        scales?.deallocate()
        columnSums?.deallocate()
        inputMultipliers?.deallocate()
    }
}
