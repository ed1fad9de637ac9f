/// The base model's encoder layers prepared for one precision and kernel path: what the forward pass runs.
/// Built once per engine from the memory-mapped weights; immutable, so one plan serves every request.
public final class ExecutionPlan: Sendable {
    /// The prepared dense layers of one encoder block.
    struct Layer: Sendable {
        /// Q, K and V as one product (`3 · hidden` outputs).
        let queryKeyValue: PreparedLinear
        let attentionOutput: PreparedLinear
        let intermediate: PreparedLinear
        let output: PreparedLinear

        /// `layer`'s dense layers grouped as the forward pass runs them (Q, K and V together), each made by `make`
        /// from its linears and its input's index (0: Q/K/V's, 1: the attention output's, 2: the intermediate's,
        /// 3: the output's).
        init(_ layer: BertWeights.Layer, _ make: (_ linears: [LinearWeights], _ input: Int) -> PreparedLinear) {
            queryKeyValue = make([layer[.query], layer[.key], layer[.value]], 0)
            attentionOutput = make([layer[.attentionOutput]], 1)
            intermediate = make([layer[.intermediate]], 2)
            output = make([layer[.output]], 3)
        }
    }

    /// The precision of the base linear layers.
    public let precision: Precision
    /// The element-wise and attention kernels' path.
    public let path: KernelPath
    /// What the process-wide GEMM runtime settled on.
    public let runtime: ExecutionRuntime.State
    let layers: [Layer]
    /// Forward passes' scratch memory, reused across passes.
    let scratch = ScratchPool()
    /// ModernBERT's rotary tables (nil for the other families).
    let rotary: RotaryTables?

    /// Prepares `weights` for `precision`, with kernels for `path` (at most the CPU's). The GEMMs run on the
    /// process-wide path (`ExecutionRuntime.configure(path:)`, the detected one unless an executable lowered it).
    /// In INT8, one FP32 pass over `calibration` (token ids) measures the inputs for `Smoothing`, on `reference` (an
    /// FP32 plan of the same weights) or on one made for it.
    init(
        weights: BertWeights, config: BertConfig, precision: Precision, path: KernelPath, calibration: [[Int32]] = [],
        reference: ExecutionPlan? = nil
    ) {
        self.precision = precision
        self.path = min(path, KernelPath.detected)
        let runtime = ExecutionRuntime.configure()
        self.runtime = runtime
        rotary = config.modernBERT.map {
            RotaryTables(layout: $0, headSize: config.headSize, positions: min(config.maxPositionEmbeddings, RotaryTables.preparedPositions))
        }
        var inputMaxima: [[[Float]]]?
        if precision == .int8, !calibration.isEmpty {
            let reference = reference ?? ExecutionPlan(weights: weights, config: config, precision: .fp32, path: path)
            let observer = Smoothing.Observer()
            _ = ForwardPass(weights: weights, config: config, plan: reference, observer: observer)
                .run(calibration.map { EncodedInput(ids: $0, adapter: nil) })
            inputMaxima = reference.layers.map { layer in
                [layer.queryKeyValue, layer.attentionOutput, layer.intermediate, layer.output].map { observer.maxima(for: $0) ?? [] }
            }
        }
        // The forward pass reads only the prepared copies; merged mode and adapter validation read the mapped
        // originals rarely and fault them back in. Dropping each layer's pages once it is prepared keeps the process
        // from holding the base model twice, even at its peak.
        layers = weights.layers.enumerated().map { index, layer in
            defer { for linear in layer.linears { linear.weight.storage.releaseResidentPages() } }
            func prepared(_ linears: [LinearWeights], input: Int) -> PreparedLinear {
                // Only the LayerNorm-fed inputs (Q/K/V's and the intermediate's): their outlier channels are the ones
                // smoothing is for; smoothing the attention context and the GELU output too made both measures worse
                // (Benchmarks/README.md).
                let smoothing = Smoothing.smoothedInputs.contains(input)
                    ? inputMaxima.map { Smoothing.factors(inputMaxima: $0[index][input], layers: linears) } : nil
                return PreparedLinear(linears, precision: precision, weightMaximum: runtime.weightMaximum, smoothing: smoothing)
            }
            return Layer(layer) { linears, input in prepared(linears, input: input) }
        }
    }

    /// Bytes the prepared layers hold (beside the mapped model file).
    public var bytes: Int {
        layers.reduce(0) { $0 + $1.queryKeyValue.bytes + $1.attentionOutput.bytes + $1.intermediate.bytes + $1.output.bytes }
    }

    /// The INT8 activations' largest value: 8 bits on every path (the weights' range is what narrows without VNNI).
    var activationMaximum: Int32 { 255 }
}
