/// Runs control requests one at a time, in arrival order. Control work (registry writes, SQLite commits) and
/// inference share the adapter registry; with one lane, at most one control request is ever queued at the
/// registry ahead of an inference request, however many a controller sends at once.
public actor ControlLane {
    public init() {}

    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    /// The result of `body`, run when every control request before it has finished.
    public func run<T: Sendable>(_ body: @Sendable () async -> T) async -> T {
        if busy {
            await withCheckedContinuation { waiting.append($0) }
        } else {
            busy = true
        }
        let result = await body()
        if waiting.isEmpty {
            busy = false
        } else {
            waiting.removeFirst().resume()
        }
        return result
    }

    /// Control requests waiting for the lane.
    public var queued: Int { waiting.count }
}
