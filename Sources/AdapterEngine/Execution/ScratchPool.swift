import Foundation

/// Keeps forward passes' scratch memory for the next pass. A batch of 32 × 52 tokens needs about 20 MiB of
/// buffers; allocated afresh each time, every page faulted in zeroed, which took 10% of an INT8 pass (perf).
final class ScratchPool: @unchecked Sendable {
    /// Free blocks kept (one per pass that may run at once on a small box).
    private static let kept = 2
    /// Blocks larger than this go back to the system: one rare huge batch should not pin its memory.
    private static let largestKept = 64 << 20

    private struct Block {
        let memory: UnsafeMutableRawPointer
        let bytes: Int
    }

    // Guarded by `lock`.
    private let lock = NSLock()
    private var free: [Block] = []

    /// A 64-byte-aligned block of at least `bytes`, and its real size (to hand back to `recycle`).
    func take(bytes: Int) -> (memory: UnsafeMutableRawPointer, bytes: Int) {
        lock.lock()
        let fitting = free.indices.filter { free[$0].bytes >= bytes }.min { free[$0].bytes < free[$1].bytes }
        let reused = fitting.map { free.remove(at: $0) }
        lock.unlock()
        if let reused { return (reused.memory, reused.bytes) }
        return (UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64), bytes)
    }

    /// Returns a block from `take` for reuse.
    func recycle(_ memory: UnsafeMutableRawPointer, bytes: Int) {
        guard bytes <= Self.largestKept else {
            memory.deallocate()
            return
        }
        lock.lock()
        free.append(Block(memory: memory, bytes: bytes))
        var dropped: Block?
        if free.count > Self.kept, let smallest = free.indices.min(by: { free[$0].bytes < free[$1].bytes }) {
            dropped = free.remove(at: smallest)
        }
        lock.unlock()
        dropped?.memory.deallocate()
    }

    deinit {
        for block in free { block.memory.deallocate() }
    }
}
