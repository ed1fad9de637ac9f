import Synchronization

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

        /// The four groups in input order (as `init` numbers them).
        var linears: [PreparedLinear] { [queryKeyValue, attentionOutput, intermediate, output] }

        /// The groups in input order (`linears`).
        init(_ groups: [PreparedLinear]) {
            queryKeyValue = groups[0]
            attentionOutput = groups[1]
            intermediate = groups[2]
            output = groups[3]
        }

        /// The input index (0: Q/K/V's, 1: the attention output's, 2: the intermediate's, 3: the output's) of the
        /// group that runs `slot`.
        static func input(of slot: LinearSlot) -> Int {
            switch slot {
            case .query, .key, .value: 0
            case .attentionOutput: 1
            case .intermediate: 2
            case .output: 3
            }
        }

        /// `layer`'s linears grouped as the forward pass runs them (Q, K and V together), in input order.
        static func groups(_ layer: BertWeights.Layer) -> [[LinearWeights]] {
            [[layer[.query], layer[.key], layer[.value]], [layer[.attentionOutput]], [layer[.intermediate]], [layer[.output]]]
        }

        /// `layer`'s groups, each made by `make` from its linears and its input index.
        init(_ layer: BertWeights.Layer, _ make: (_ linears: [LinearWeights], _ input: Int) -> PreparedLinear) {
            self.init(Self.groups(layer).enumerated().map { make($1, $0) })
        }
    }

    /// Identifies the plan to the per-adapter state kept for it (`AdapterMerges`).
    let id: UInt64
    private static let ids = Atomic<UInt64>(0)
    /// The precision of the base linear layers.
    public let precision: Precision
    /// The element-wise and attention kernels' path.
    public let path: KernelPath
    /// What the process-wide GEMM runtime settled on.
    public let runtime: ExecutionRuntime.State
    let layers: [Layer]
    /// Forward passes' scratch memory, reused across passes.
    let scratch: ScratchPool
    /// ModernBERT's rotary tables (nil for the other families).
    let rotary: RotaryTables?
    /// INT8: the calibration inputs' largest magnitude per channel, `[layer][input]` (as `Layer.init` numbers the
    /// inputs), kept so that layers merged with an adapter later are smoothed on the same measurements.
    let inputMaxima: [[[Float]]]?

    /// Prepares `weights` for `precision`, with kernels for `path` (at most the CPU's). The GEMMs run on the
    /// process-wide path (`ExecutionRuntime.configure(path:)`, the detected one unless an executable lowered it).
    /// In INT8, one FP32 pass over `calibration` (token ids) measures the inputs for `Smoothing`, on `reference` (an
    /// FP32 plan of the same weights) or on one made for it.
    init(
        weights: BertWeights, config: BertConfig, precision: Precision, path: KernelPath, calibration: [[Int32]] = [],
        reference: ExecutionPlan? = nil
    ) {
        id = Self.ids.add(1, ordering: .relaxed).newValue
        self.precision = precision
        self.path = min(path, KernelPath.detected)
        scratch = ScratchPool()
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
        self.inputMaxima = inputMaxima
        // The forward pass reads only the prepared copies; merged mode and adapter validation read the mapped
        // originals rarely and fault them back in. Dropping each layer's pages once it is prepared keeps the process
        // from holding the base model twice, even at its peak.
        layers = weights.layers.enumerated().map { index, layer in
            defer { for linear in layer.linears { linear.weight.storage.releaseResidentPages() } }
            return Layer(layer) { linears, input in
                Self.prepared(linears, layer: index, input: input, precision: precision, runtime: runtime, inputMaxima: inputMaxima)
            }
        }
    }

    /// `base` with the groups of layers `changed` names (`[layer: inputs]`, numbered as in `Layer.init`) prepared
    /// again from `weights` (an adapter merged into copies of them), the others shared with `base`.
    init(merging weights: BertWeights, changed: [Int: Set<Int>], into base: ExecutionPlan, pause: () -> Void = {}) {
        id = Self.ids.add(1, ordering: .relaxed).newValue
        precision = base.precision
        path = base.path
        runtime = base.runtime
        scratch = base.scratch
        rotary = base.rotary
        inputMaxima = base.inputMaxima
        layers = base.layers.enumerated().map { index, shared in
            guard let inputs = changed[index] else { return shared }
            pause()
            let groups = Layer.groups(weights.layers[index])
            return Layer(shared.linears.enumerated().map { input, kept in
                inputs.contains(input)
                    ? Self.prepared(groups[input], layer: index, input: input, precision: base.precision, runtime: base.runtime, inputMaxima: base.inputMaxima)
                    : kept
            })
        }
    }

    /// One group of `layer`'s linears prepared for `precision`; in INT8, smoothed on `inputMaxima`.
    private static func prepared(
        _ linears: [LinearWeights], layer: Int, input: Int, precision: Precision, runtime: ExecutionRuntime.State, inputMaxima: [[[Float]]]?
    ) -> PreparedLinear {
        // Only the LayerNorm-fed inputs (Q/K/V's and the intermediate's): their outlier channels are the ones
        // smoothing is for; smoothing the attention context and the GELU output too made both measures worse
        // (Benchmarks/README.md).
        let smoothing = Smoothing.smoothedInputs.contains(input)
            ? inputMaxima.map { Smoothing.factors(inputMaxima: $0[layer][input], layers: linears) } : nil
        return PreparedLinear(linears, precision: precision, weightMaximum: runtime.weightMaximum, smoothing: smoothing)
    }

    /// Bytes the groups `changed` names (as in `init(merging:changed:into:)`) hold in this plan.
    func bytes(of changed: [Int: Set<Int>]) -> Int {
        changed.reduce(0) { total, entry in
            let layer = layers[entry.key]
            return total + entry.value.reduce(0) { $0 + layer.linears[$1].bytes }
        }
    }

    /// Bytes the prepared layers hold (beside the mapped model file).
    public var bytes: Int {
        layers.reduce(0) { $0 + $1.queryKeyValue.bytes + $1.attentionOutput.bytes + $1.intermediate.bytes + $1.output.bytes }
    }

    /// The INT8 activations' largest value: 8 bits on every path (the weights' range is what narrows without VNNI).
    var activationMaximum: Int32 { 255 }
}
