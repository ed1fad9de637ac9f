import CDNNL
import Foundation

/// The products on oneDNN's matmul primitive with `B` packed once into the layout its kernels read (AMX tiles, VNNI
/// or BF16 blocks): `C[m × n] = A[m × k] · B[k × n]`, in one of two number formats (`Kind`).
///
/// INT8 chosen by measurement over `dnnl_gemm_u8s8s32`, which repacks `B` on every call and cannot use AMX well: a
/// forward pass's 24 products took 0.30 instead of 1.09 ms at 16 rows and 21 instead of 32 ms at 1,664 rows on
/// an AMX machine (Benchmarks/README.md). BF16 runs at twice FP32's rate where the CPU has BF16 dot products
/// (45 against 89 µs for 16 × 384 × 1,536 here). A primitive depends only on the shape, so one per (rows, n, k)
/// serves every layer; rows are rounded up a little (`paddedRows`) so that a few primitives serve every batch.
final class PackedMatmul: @unchecked Sendable {
    /// The number formats of a product's operands.
    struct Kind: Sendable {
        let source: dnnl_data_type_t
        let weights: dnnl_data_type_t
        let destination: dnnl_data_type_t

        /// Unsigned 8-bit activations, signed 8-bit weights, int32 sums.
        static let int8 = Kind(source: dnnl_u8, weights: dnnl_s8, destination: dnnl_s32)
        /// bfloat16 activations and weights, float sums.
        static let bf16 = Kind(source: dnnl_bf16, weights: dnnl_bf16, destination: dnnl_f32)
    }

    /// The process's INT8 products (oneDNN's CPU engine is process-wide too).
    static let int8 = PackedMatmul(.int8)
    /// The process's BF16 products.
    static let bf16 = PackedMatmul(.bf16)

    let kind: Kind

    /// Rows a product of `rows` rows runs with: `A` and `C` must have room for this many (the extra rows' values
    /// are ignored). Up to 4 rows exactly, then a multiple of 4 up to 64 rows, of 8 up to 128 and of 16 past that,
    /// so that padding adds at most an eighth and a batch of up to 512 rows meets 51 shapes. A product's cost
    /// follows its rows closely (BF16, 1,152 × 384: 1 row 9.6 µs, 16 rows 47, 17 rows 44 exact against 78 padded
    /// to 32), so whole 16-row tiles for every batch, as before, cost up to twice a few rows' price.
    static func paddedRows(_ rows: Int) -> Int {
        guard rows > 4 else { return rows }
        // The largest power of two below `rows`, over 8, between 4 and 16.
        let step = min(16, max(4, (1 << (Int.bitWidth - 1 - (rows - 1).leadingZeroBitCount)) / 8))
        return (rows + step - 1) / step * step
    }

    /// At most this many primitives are kept; past it the cache starts again (each costs 0.1–1.5 ms to make).
    private static let capacity = 512

    private struct Shape: Hashable {
        let rows: Int
        let outputs: Int
        let inputs: Int
    }

    // Immutable after init (oneDNN engines are thread-safe); `primitives` is guarded by `lock`.
    private let engine: dnnl_engine_t
    private let lock = NSLock()
    private var primitives: [Shape: Primitive] = [:]

    private init(_ kind: Kind) {
        self.kind = kind
        var engine: dnnl_engine_t?
        Self.check(dnnl_engine_create(&engine, dnnl_cpu, 0), "dnnl_engine_create")
        self.engine = engine!
    }

    /// Packs `plain` (`[inputs, outputs]`, row-major) into the layout the products read.
    func pack(_ plain: UnsafeRawPointer, inputs: Int, outputs: Int) -> PackedWeights {
        // The packed layout does not depend on the rows (checked for 1…2,048 on AMX); it is taken from a
        // representative shape and every later primitive is made for exactly that layout.
        let descriptor = withDescriptors(rows: 16, outputs: outputs, inputs: inputs, weights: nil) { pd in
            dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0).pointee
        }
        var plainDescriptor = Self.descriptor([inputs, outputs], kind.weights)
        var packedDescriptor = descriptor
        let bytes = dnnl_memory_desc_get_size(&packedDescriptor)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 64), alignment: 64)
        var source: dnnl_memory_t?
        var destination: dnnl_memory_t?
        var reorderDescriptor: dnnl_primitive_desc_t?
        var reorder: dnnl_primitive_t?
        var stream: dnnl_stream_t?
        Self.check(dnnl_memory_create(&source, &plainDescriptor, engine, UnsafeMutableRawPointer(mutating: plain)), "dnnl_memory_create")
        Self.check(dnnl_memory_create(&destination, &packedDescriptor, engine, buffer), "dnnl_memory_create")
        Self.check(dnnl_reorder_primitive_desc_create(&reorderDescriptor, &plainDescriptor, engine, &packedDescriptor, engine, nil), "reorder")
        Self.check(dnnl_primitive_create(&reorder, reorderDescriptor), "dnnl_primitive_create(reorder)")
        Self.check(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue), "dnnl_stream_create")
        var arguments = [
            dnnl_exec_arg_t(arg: DNNL_ARG_FROM, memory: source), dnnl_exec_arg_t(arg: DNNL_ARG_TO, memory: destination),
        ]
        Self.check(dnnl_primitive_execute(reorder, stream, 2, &arguments), "reorder")
        Self.check(dnnl_stream_wait(stream), "dnnl_stream_wait")
        dnnl_stream_destroy(stream)
        dnnl_primitive_destroy(reorder)
        dnnl_primitive_desc_destroy(reorderDescriptor)
        dnnl_memory_destroy(source)
        dnnl_memory_destroy(destination)
        return PackedWeights(inputs: inputs, outputs: outputs, descriptor: descriptor, bytes: bytes, data: buffer)
    }

    /// `c[rows × n] = a[rows × k] · weights`; `a` and `c` hold `paddedRows(rows)` rows with leading dimensions k
    /// and n.
    func multiply(rows: Int, a: UnsafeRawPointer, weights: PackedWeights, c: UnsafeMutableRawPointer) {
        guard rows > 0 else { return }
        OneDNNCall.run { execute(rows: rows, a: a, weights: weights, c: c) }
    }

    /// `multiply`'s oneDNN calls: the primitive (made on first use), its memories, the product.
    private func execute(rows: Int, a: UnsafeRawPointer, weights: PackedWeights, c: UnsafeMutableRawPointer) {
        let m = Self.paddedRows(rows)
        let primitive = self.primitive(Shape(rows: m, outputs: weights.outputs, inputs: weights.inputs), weights: weights)
        var aDescriptor = Self.descriptor([m, weights.inputs], kind.source)
        var cDescriptor = Self.descriptor([m, weights.outputs], kind.destination)
        var weightsDescriptor = weights.descriptor
        var aMemory: dnnl_memory_t?
        var bMemory: dnnl_memory_t?
        var cMemory: dnnl_memory_t?
        var scratchMemory: dnnl_memory_t?
        var stream: dnnl_stream_t?
        // The scratchpad is the caller's (user mode), so products on several threads never share one.
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: max(primitive.scratchpadBytes, 64), alignment: 64)
        defer {
            dnnl_stream_destroy(stream)
            dnnl_memory_destroy(aMemory)
            dnnl_memory_destroy(bMemory)
            dnnl_memory_destroy(cMemory)
            dnnl_memory_destroy(scratchMemory)
            scratch.deallocate()
        }
        var scratchDescriptor = primitive.scratchpadDescriptor
        Self.check(dnnl_memory_create(&aMemory, &aDescriptor, engine, UnsafeMutableRawPointer(mutating: a)), "dnnl_memory_create")
        Self.check(dnnl_memory_create(&bMemory, &weightsDescriptor, engine, weights.data), "dnnl_memory_create")
        Self.check(dnnl_memory_create(&cMemory, &cDescriptor, engine, c), "dnnl_memory_create")
        Self.check(dnnl_memory_create(&scratchMemory, &scratchDescriptor, engine, scratch), "dnnl_memory_create")
        Self.check(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue), "dnnl_stream_create")
        var arguments = [
            dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: aMemory), dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: bMemory),
            dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: cMemory), dnnl_exec_arg_t(arg: DNNL_ARG_SCRATCHPAD, memory: scratchMemory),
        ]
        Self.check(dnnl_primitive_execute(primitive.handle, stream, Int32(arguments.count), &arguments), "dnnl_primitive_execute(matmul)")
        Self.check(dnnl_stream_wait(stream), "dnnl_stream_wait")
    }

    /// oneDNN's implementation for `weights` (e.g. `brg:avx512_core_amx_int8`), for reports.
    func implementation(for weights: PackedWeights) -> String {
        primitive(Shape(rows: 16, outputs: weights.outputs, inputs: weights.inputs), weights: weights).implementation
    }

    private func primitive(_ shape: Shape, weights: PackedWeights) -> Primitive {
        lock.lock()
        if let cached = primitives[shape] {
            lock.unlock()
            return cached
        }
        lock.unlock()
        // Made outside the lock: two threads meeting a new shape both make it, and one copy is kept.
        let made = withDescriptors(rows: shape.rows, outputs: shape.outputs, inputs: shape.inputs, weights: weights.descriptor) { pd in
            Primitive(descriptor: pd)
        }
        lock.lock()
        defer { lock.unlock() }
        if let cached = primitives[shape] { return cached }
        if primitives.count >= Self.capacity { primitives.removeAll() }
        primitives[shape] = made
        return made
    }

    /// Calls `body` with a matmul primitive descriptor for the shape (user scratchpad), `weights` as given or `any`.
    private func withDescriptors<T>(
        rows: Int, outputs: Int, inputs: Int, weights: dnnl_memory_desc_t?, _ body: (dnnl_primitive_desc_t) -> T
    ) -> T {
        var a = Self.descriptor([rows, inputs], kind.source)
        var b = weights ?? Self.descriptor([inputs, outputs], kind.weights, tag: dnnl_format_tag_any)
        var c = Self.descriptor([rows, outputs], kind.destination)
        var matmul = dnnl_matmul_desc_t()
        Self.check(dnnl_matmul_desc_init(&matmul, &a, &b, nil, &c), "dnnl_matmul_desc_init")
        var attributes: dnnl_primitive_attr_t?
        Self.check(dnnl_primitive_attr_create(&attributes), "dnnl_primitive_attr_create")
        defer { dnnl_primitive_attr_destroy(attributes) }
        Self.check(dnnl_primitive_attr_set_scratchpad_mode(attributes, dnnl_scratchpad_mode_user), "scratchpad mode")
        var descriptor: dnnl_primitive_desc_t?
        Self.check(dnnl_primitive_desc_create(&descriptor, &matmul, attributes, engine, nil), "matmul \(rows)×\(outputs)×\(inputs)")
        defer { dnnl_primitive_desc_destroy(descriptor) }
        return body(descriptor!)
    }

    private static func descriptor(_ dims: [Int], _ type: dnnl_data_type_t, tag: dnnl_format_tag_t = dnnl_ab) -> dnnl_memory_desc_t {
        var descriptor = dnnl_memory_desc_t()
        var dimensions = dims.map { dnnl_dim_t($0) }
        check(dnnl_memory_desc_init_by_tag(&descriptor, Int32(dims.count), &dimensions, type, tag), "dnnl_memory_desc_init_by_tag")
        return descriptor
    }

    /// oneDNN failing here means a shape or layout it cannot run: a programming error, not a request's.
    static func check(_ status: dnnl_status_t, _ what: @autoclosure () -> String) {
        precondition(status == dnnl_success, "oneDNN \(what()) failed with status \(status.rawValue)")
    }

    /// A matmul primitive and what executing it needs.
    private final class Primitive: @unchecked Sendable {
        // Immutable after init; oneDNN primitives may execute on several threads at once with user scratchpads.
        let handle: dnnl_primitive_t
        let scratchpadDescriptor: dnnl_memory_desc_t
        let scratchpadBytes: Int
        let implementation: String

        init(descriptor: dnnl_primitive_desc_t) {
            var primitive: dnnl_primitive_t?
            PackedMatmul.check(dnnl_primitive_create(&primitive, descriptor), "dnnl_primitive_create(matmul)")
            handle = primitive!
            var scratchpad = dnnl_primitive_desc_query_md(descriptor, dnnl_query_scratchpad_md, 0).pointee
            scratchpadDescriptor = scratchpad
            scratchpadBytes = dnnl_memory_desc_get_size(&scratchpad)
            var name: UnsafePointer<CChar>?
            dnnl_primitive_desc_query(descriptor, dnnl_query_impl_info_str, 0, &name)
            implementation = name.map { String(cString: $0) } ?? "unknown"
        }

        deinit { dnnl_primitive_destroy(handle) }
    }
}

/// Weights `[inputs, outputs]` packed for one `PackedMatmul`.
final class PackedWeights: @unchecked Sendable {
    let inputs: Int
    let outputs: Int
    /// oneDNN's description of the packed layout.
    let descriptor: dnnl_memory_desc_t
    /// Bytes the packed copy holds.
    let bytes: Int
    // Immutable after packing, so sharing across threads is safe.
    let data: UnsafeMutableRawPointer

    init(inputs: Int, outputs: Int, descriptor: dnnl_memory_desc_t, bytes: Int, data: UnsafeMutableRawPointer) {
        self.inputs = inputs
        self.outputs = outputs
        self.descriptor = descriptor
        self.bytes = bytes
        self.data = data
    }

    deinit { data.deallocate() }
}
