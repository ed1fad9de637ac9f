/// One IA³ vector (`ia3_l`) on a Linear layer: it scales the layer's inputs, `y = W·(x ⊙ l) + b`, when PEFT's
/// `feedforward_modules` names the layer, and its outputs, bias included, `y = (W·x + b) ⊙ l`, otherwise.
public struct IA3Scaling: Sendable {
    /// The learned vector, one entry per input (`scalesInput`) or per output.
    public let vector: Tensor
    /// Whether the inputs, not the outputs, are scaled.
    public let scalesInput: Bool

    /// A scaling by `vector` of the inputs or outputs.
    public init(vector: Tensor, scalesInput: Bool) {
        self.vector = vector
        self.scalesInput = scalesInput
    }
}
