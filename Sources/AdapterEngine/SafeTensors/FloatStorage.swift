/// Immutable F32 elements: either a zero-copy view into a mapped file or a buffer this object owns.
///
/// A class so that a view keeps its mapping alive and an owned buffer is freed exactly once;
/// it never changes after `init`, which makes sharing across tasks safe.
public final class FloatStorage: @unchecked Sendable {
    /// First element.
    public let baseAddress: UnsafePointer<Float>
    /// Number of elements.
    public let count: Int
    private let mapping: MappedFile?
    private let owned: UnsafeMutablePointer<Float>?
    /// The storage a slice views (kept alive with it).
    private let parent: FloatStorage?

    /// A view into `mapping`; `pointer` must lie inside it and be 4-byte aligned.
    init(viewing pointer: UnsafePointer<Float>, count: Int, in mapping: MappedFile) {
        baseAddress = pointer
        self.count = count
        self.mapping = mapping
        owned = nil
        parent = nil
    }

    /// A view of `count` elements of `parent` from `offset` on (no copy).
    init(slicing parent: FloatStorage, from offset: Int, count: Int) {
        precondition(offset >= 0 && count >= 0 && offset + count <= parent.count, "slice outside its storage")
        baseAddress = parent.baseAddress + offset
        self.count = count
        mapping = parent.mapping
        owned = nil
        self.parent = parent
    }

    /// Takes `count` elements written by `fill` into a new buffer.
    public init(count: Int, fill: (UnsafeMutableBufferPointer<Float>) throws -> Void) rethrows {
        let memory = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
        do {
            try fill(UnsafeMutableBufferPointer(start: memory, count: count))
        } catch {
            memory.deallocate()
            throw error
        }
        baseAddress = UnsafePointer(memory)
        self.count = count
        mapping = nil
        owned = memory
        parent = nil
    }

    /// Copies `values` into a new buffer.
    public convenience init(_ values: [Float]) {
        self.init(count: values.count) { buffer in
            _ = buffer.initialize(from: values)
        }
    }

    /// Whether this storage points into a memory-mapped file (no copy was made).
    public var isMapped: Bool { mapping != nil }

    /// For a mapped view: drops its resident pages (they fault back in if read again). For weights the engine has
    /// copied into another layout, so that the process does not hold both.
    public func releaseResidentPages() {
        mapping?.releasePages(from: UnsafeRawPointer(baseAddress), byteCount: count * MemoryLayout<Float>.size)
    }

    /// Calls `body` with the elements; the storage stays alive until it returns.
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try withExtendedLifetime(self) { try body(UnsafeBufferPointer(start: baseAddress, count: count)) }
    }

    /// A copy of the elements.
    public var values: [Float] { withUnsafeBufferPointer { Array($0) } }

    deinit { owned?.deallocate() }
}

/// An F32 tensor: shape plus contiguous row-major elements.
public struct Tensor: Sendable {
    /// Dimensions, outermost first.
    public let shape: [Int]
    /// The elements.
    public let storage: FloatStorage

    /// Wraps `storage` with `shape` (the element counts must agree).
    public init(shape: [Int], storage: FloatStorage) {
        precondition(shape.reduce(1, *) == storage.count, "shape \(shape) does not match \(storage.count) elements")
        self.shape = shape
        self.storage = storage
    }

    /// Pointer to the first element.
    public var pointer: UnsafePointer<Float> { storage.baseAddress }
    /// Number of elements.
    public var count: Int { storage.count }

    /// Rows `range` of a matrix (the first dimension), as a view of the same elements.
    public func rows(_ range: Range<Int>) -> Tensor {
        let width = shape.dropFirst().reduce(1, *)
        return Tensor(
            shape: [range.count] + shape.dropFirst(),
            storage: FloatStorage(slicing: storage, from: range.lowerBound * width, count: range.count * width))
    }
}
