/// What one worker sends back after a round: its trained tensors and how much they are worth.
public struct ClientUpdate: Sendable, Equatable {
    /// The worker's id.
    public var worker: String
    /// The tensors it trained (LoRA factors per the method, and the head), as they are after training.
    public var tensors: TensorSet
    /// Examples it trained on.
    public var examples: Int
    /// Accuracy on its held-out local examples (nil when it held none out).
    public var localAccuracy: Double?

    /// An update from `worker`.
    public init(worker: String, tensors: TensorSet, examples: Int, localAccuracy: Double?) {
        self.worker = worker
        self.tensors = tensors
        self.examples = examples
        self.localAccuracy = localAccuracy
    }
}
