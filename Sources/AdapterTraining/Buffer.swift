/// A zeroed float buffer that one pass owns, counted by its meter.
final class Buffer {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int
    private let meter: MemoryMeter

    init(_ count: Int, meter: MemoryMeter) {
        self.count = count
        self.meter = meter
        pointer = .allocate(capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
        meter.add(4 * max(count, 1))
    }

    deinit {
        pointer.deallocate()
        meter.add(-4 * max(count, 1))
    }
}

/// Live and peak bytes of one pass's buffers (a pass runs on one thread).
final class MemoryMeter {
    private(set) var live = 0
    private(set) var peak = 0

    func add(_ bytes: Int) {
        live += bytes
        peak = max(peak, live)
    }
}
