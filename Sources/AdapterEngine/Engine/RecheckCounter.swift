import Synchronization

/// Counts the rows an INT8 engine answered from its FP32 re-check; shared by every copy of the engine.
final class RecheckCounter: Sendable {
    private let count = Atomic<Int>(0)

    /// Adds `rows`.
    func add(_ rows: Int) { count.add(rows, ordering: .relaxed) }

    /// Rows counted so far.
    var value: Int { count.load(ordering: .relaxed) }
}
