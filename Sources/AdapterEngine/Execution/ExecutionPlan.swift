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
    }

    /// The precision of the base linear layers.
    public let precision: Precision
    /// The element-wise and attention kernels' path.
    public let path: KernelPath
    /// What the process-wide GEMM runtime settled on.
    public let runtime: ExecutionRuntime.State
    let layers: [Layer]

    /// Prepares `weights` for `precision`, with kernels for `path` (at most the CPU's). The GEMMs run on the
    /// process-wide path (`ExecutionRuntime.configure(path:)`, the detected one unless an executable lowered it).
    init(weights: BertWeights, precision: Precision, path: KernelPath) {
        self.precision = precision
        self.path = min(path, KernelPath.detected)
        let runtime = ExecutionRuntime.configure()
        self.runtime = runtime
        // The forward pass reads only the prepared copies; merged mode and adapter validation read the mapped
        // originals rarely and fault them back in. Dropping each layer's pages once it is prepared keeps the process
        // from holding the base model twice, even at its peak.
        layers = weights.layers.map { layer in
            defer { for linear in layer.linears { linear.weight.storage.releaseResidentPages() } }
            return Layer(
                queryKeyValue: PreparedLinear([layer[.query], layer[.key], layer[.value]], precision: precision, weightMaximum: runtime.weightMaximum),
                attentionOutput: PreparedLinear([layer[.attentionOutput]], precision: precision, weightMaximum: runtime.weightMaximum),
                intermediate: PreparedLinear([layer[.intermediate]], precision: precision, weightMaximum: runtime.weightMaximum),
                output: PreparedLinear([layer[.output]], precision: precision, weightMaximum: runtime.weightMaximum))
        }
    }

    /// Bytes the prepared layers hold (beside the mapped model file).
    public var bytes: Int {
        layers.reduce(0) { $0 + $1.queryKeyValue.bytes + $1.attentionOutput.bytes + $1.intermediate.bytes + $1.output.bytes }
    }

    /// The INT8 activations' largest value: 8 bits on every path (the weights' range is what narrows without VNNI).
    var activationMaximum: Int32 { 255 }
}
