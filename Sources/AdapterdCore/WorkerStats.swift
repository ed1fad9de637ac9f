/// Counters of one worker's requests, and whether it is draining for shutdown.
public actor WorkerStats {
    public private(set) var executed = 0
    public private(set) var failed = 0
    public private(set) var inFlight = 0
    public private(set) var draining = false

    public init() {}

    func begin() { inFlight += 1 }

    func end(status: Int) {
        inFlight -= 1
        executed += 1
        if status != 0 { failed += 1 }
    }

    func reject() { failed += 1 }

    func startDraining() { draining = true }
}
