import Foundation

/// Counters of one worker's requests, and whether it is draining for shutdown.
public actor WorkerStats {
    public private(set) var executed = 0
    public private(set) var failed = 0
    /// Requests answered without running (malformed, expired, or arriving while draining).
    public private(set) var rejected = 0
    public private(set) var inFlight = 0
    public private(set) var draining = false

    public init() {}

    func begin() { inFlight += 1 }

    func end(status: Int) {
        inFlight -= 1
        executed += 1
        if status != 0 { failed += 1 }
    }

    func reject() {
        failed += 1
        rejected += 1
    }

    func startDraining() { draining = true }
}

/// Messages taken from the broker and not yet answered, counted from the moment they leave the stream (before
/// any task starts), so draining cannot disconnect while a reply is still owed.
///
/// A class with a lock: the receive loop updates it synchronously, without awaiting an actor.
final class IntakeTracker: @unchecked Sendable {
    private let lock = NSLock()
    private var open = 0
    private var lastArrival = ContinuousClock.now

    func received() {
        lock.withLock {
            open += 1
            lastArrival = .now
        }
    }

    func answered() {
        lock.withLock { open -= 1 }
    }

    /// Whether nothing is owed and nothing has arrived for `quiet`.
    func isIdle(quiet: Duration) -> Bool {
        lock.withLock { open == 0 && ContinuousClock.now - lastArrival >= quiet }
    }
}
