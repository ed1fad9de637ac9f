/// Why a training run could not start or finish.
public enum TrainingError: Error, CustomStringConvertible, Sendable, Equatable {
    case invalidOptions(String)
    case shape(name: String, expected: [Int])
    case unreadable(path: String, reason: String)
    case unwritable(path: String, reason: String)
    case invalidExamples(path: String, line: Int, reason: String)
    case unknownLabel(label: String, labels: [String])
    case tooLarge(neededBytes: Int, budgetBytes: Int)
    case cancelled
    /// The loss stopped being a finite number (too large a learning rate or alpha).
    case diverged(step: Int, loss: Float)

    public var description: String {
        switch self {
        case .invalidOptions(let reason):
            return "training options refused: \(reason)"
        case let .shape(name, expected):
            return "tensor \(name) does not have the shape \(expected) the base model implies"
        case let .unreadable(path, reason):
            return "cannot read \(path): \(reason)"
        case let .unwritable(path, reason):
            return "cannot write \(path): \(reason)"
        case let .invalidExamples(path, line, reason):
            return "\(path), line \(line): \(reason); each line must be {\"text\": \"…\", \"label\": \"…\"}"
        case let .unknownLabel(label, labels):
            return "label '\(label)' is not one of the adapter's labels \(labels)"
        case let .tooLarge(needed, budget):
            return "training needs about \(needed >> 20) MiB, over the memory budget of \(budget >> 20) MiB: use a smaller batch or shorter texts"
        case .cancelled:
            return "training was cancelled"
        case let .diverged(step, loss):
            return "training diverged: the loss was \(loss) at step \(step); lower the learning rate or alpha"
        }
    }
}
