import CEngineKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Scratch buffers for one forward pass, carved from a single 64-byte-aligned block of the plan's pool.
struct Arena {
    private let memory: UnsafeMutableRawPointer
    private let capacity: Int
    private let starts: [Int]
    private let pool: ScratchPool

    /// One buffer per entry of `sizes` (bytes).
    init(sizes: [Int], pool: ScratchPool) {
        var starts: [Int] = []
        var total = 0
        for size in sizes {
            starts.append(total)
            total += (size + 63) / 64 * 64
        }
        (memory, capacity) = pool.take(bytes: max(total, 64))
        self.starts = starts
        self.pool = pool
    }

    /// Buffer `index`, typed as the caller needs.
    subscript<T>(index: Int) -> UnsafeMutablePointer<T> { (memory + starts[index]).assumingMemoryBound(to: T.self) }

    /// Hands the block back to the pool.
    func deallocate() { pool.recycle(memory, bytes: capacity) }
}
