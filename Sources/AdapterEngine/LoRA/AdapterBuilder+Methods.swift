/// AdaLoRA, LoHa and LoKr, each turned at load into the exact low-rank pair `ΔW = s · B'·A'` the LoRA kernels run,
/// so every method is served per row of mixed batches, in FP32 and INT8, merged or not, at the cost of a LoRA of
/// the pair's rank (the factorisations below are exact, not approximations).
extension AdapterBuilder {
    /// Throws for a tensor of `moduleName` that the method does not have (another method's, or a convolution's).
    func requireOnly(_ parts: Set<String>, in tensors: [String: TensorInfo], moduleName: String) throws(AdapterError) {
        if let extra = tensors.keys.sorted().first(where: { !parts.contains($0) }), let info = tensors[extra] {
            throw .unexpectedTensor(adapter: name, tensor: info.name)
        }
    }

    /// The tensor `part` of `moduleName`, which must have `shape` (a nil entry takes any size).
    func factor(_ part: String, spelled suffix: String, of moduleName: String, in tensors: [String: TensorInfo], shape: [Int?], reason: String) throws(AdapterError) -> Tensor {
        guard let info = tensors[part] else { throw .missingTensor(adapter: name, tensor: Self.prefix + moduleName + suffix) }
        guard info.shape.count == shape.count, zip(info.shape, shape).allSatisfy({ $1 == nil || $0 == $1 }) else {
            throw .shapeMismatch(adapter: name, tensor: info.name, shape: info.shape, expected: shape.map { $0 ?? 0 }, reason: reason)
        }
        return try tensor(info)
    }

    /// The scaling `alpha / r` of `moduleName` after `rank_pattern` and `alpha_pattern`, checked as LoRA's is.
    func checkedScaling(_ scaling: Double, field: String, moduleName: String) throws(AdapterError) -> Float {
        guard Float(scaling).isFinite, abs(scaling) <= Double(Self.largestValue) else {
            throw .invalidConfig(adapter: name, field: field, reason: "the scaling of '\(moduleName)' is \(scaling), beyond ±\(Self.largestValue)")
        }
        return Float(scaling)
    }

    /// AdaLoRA: `ΔW = B·(A ⊙ E)·alpha / (ranknum + 1e-5)`, as PEFT's forward computes it. The saved tensors already
    /// hold each module's kept ranks (its budget's `rank_pattern`), possibly none; `ranknum` stays `init_r`, the rank
    /// the module was created with, and is not saved. A module pruned to rank 0 adds nothing.
    func adalora(for moduleName: String, module: BertModule, tensors: [String: TensorInfo]) throws(AdapterError) -> LoRAWeights? {
        guard case .linear = module else {
            throw .methodCannotAdapt(adapter: name, module: moduleName, reason: "an embedding table or the pooler with AdaLoRA; AdaLoRA is served on the encoder's Linear layers")
        }
        try requireOnly(["A", "B", "E"], in: tensors, moduleName: moduleName)
        let shape = model.shape(of: module)!
        guard let infoE = tensors["E"] else { throw .missingTensor(adapter: name, tensor: Self.prefix + moduleName + ".lora_E") }
        let rank = infoE.shape.first ?? 0
        let reason = "lora_E of '\(moduleName)' keeps \(rank) ranks"
        let e = try factor("E", spelled: ".lora_E", of: moduleName, in: tensors, shape: [rank, 1], reason: reason)
        let a = try factor("A", spelled: ".lora_A", of: moduleName, in: tensors, shape: [rank, shape.inFeatures], reason: reason)
        let b = try factor("B", spelled: ".lora_B", of: moduleName, in: tensors, shape: [shape.outFeatures, rank], reason: reason)
        guard rank > 0 else { return nil }
        let alpha = config.alpha > 0 ? config.alpha : Double(rank)
        let scaling = try checkedScaling(alpha / (Double(config.initialRank) + 1e-5), field: "lora_alpha", moduleName: moduleName)
        let inputs = shape.inFeatures
        let scaledA = Tensor(shape: [rank, inputs], storage: FloatStorage(count: rank * inputs) { out in
            for k in 0..<rank {
                for column in 0..<inputs { out[k * inputs + column] = a.pointer[k * inputs + column] * e.pointer[k] }
            }
        })
        return LoRAWeights(a: scaledA, b: b, rank: rank, scaling: scaling)
    }

    /// LoHa: `ΔW = (w1a·w1b) ⊙ (w2a·w2b) · alpha/r`. The Hadamard product of two rank-r products is exactly a product
    /// of rank r1·r2: column (i, j) of B' is `w1a[:, i] ⊙ w2a[:, j]` and row (i, j) of A' is `w1b[i, :] ⊙ w2b[j, :]`.
    func loha(for moduleName: String, module: BertModule, tensors: [String: TensorInfo]) throws(AdapterError) -> LoRAWeights? {
        guard module != .classifier, !isEmbedding(module) else {
            throw .methodCannotAdapt(adapter: name, module: moduleName, reason: "an embedding table with LoHa; LoHa is served on Linear layers")
        }
        if tensors["t1"] != nil || tensors["t2"] != nil {
            throw .methodCannotAdapt(adapter: name, module: moduleName, reason: "a LoHa CP decomposition (hada_t1/hada_t2, for convolutions)")
        }
        try requireOnly(["w1a", "w1b", "w2a", "w2b"], in: tensors, moduleName: moduleName)
        let shape = model.shape(of: module)!
        let rank = matcher.rank(for: moduleName)
        let reason = "r/rank_pattern gives rank \(rank) for '\(moduleName)', which has \(shape.inFeatures) inputs and \(shape.outFeatures) outputs"
        let (outputs, inputs) = (shape.outFeatures, shape.inFeatures)
        let w1a = try factor("w1a", spelled: ".hada_w1_a", of: moduleName, in: tensors, shape: [outputs, rank], reason: reason)
        let w1b = try factor("w1b", spelled: ".hada_w1_b", of: moduleName, in: tensors, shape: [rank, inputs], reason: reason)
        let w2a = try factor("w2a", spelled: ".hada_w2_a", of: moduleName, in: tensors, shape: [outputs, rank], reason: reason)
        let w2b = try factor("w2b", spelled: ".hada_w2_b", of: moduleName, in: tensors, shape: [rank, inputs], reason: reason)
        let scaling = try checkedScaling(matcher.alpha(for: moduleName) / Double(rank), field: "alpha", moduleName: moduleName)
        let product = rank * rank
        let a = Tensor(shape: [product, inputs], storage: FloatStorage(count: product * inputs) { out in
            for i in 0..<rank {
                for j in 0..<rank {
                    let row = (i * rank + j) * inputs
                    for column in 0..<inputs { out[row + column] = w1b.pointer[i * inputs + column] * w2b.pointer[j * inputs + column] }
                }
            }
        })
        let b = Tensor(shape: [outputs, product], storage: FloatStorage(count: outputs * product) { out in
            for output in 0..<outputs {
                for i in 0..<rank {
                    for j in 0..<rank { out[output * product + i * rank + j] = w1a.pointer[output * rank + i] * w2a.pointer[output * rank + j] }
                }
            }
        })
        return LoRAWeights(a: a, b: b, rank: product, scaling: scaling)
    }

    /// LoKr: `ΔW = kron(w1, w2) · alpha/r`, each factor full (`lokr_w1`) or a product (`lokr_w1_a·lokr_w1_b`). With
    /// `w1 = P1·P2` and `w2 = Q1·Q2` (a full factor is itself times an identity, on its narrower side),
    /// `kron(w1, w2) = kron(P1, Q1)·kron(P2, Q2)`: a pair of rank r1·r2, never more than the layer's width.
    /// A LoKr module as the engine runs it.
    enum LoKrForm {
        /// An equivalent low-rank pair.
        case pair(LoRAWeights)
        /// The Kronecker factors themselves (`KroneckerDelta`).
        case kronecker(KroneckerDelta)
    }

    func lokr(for moduleName: String, module: BertModule, tensors: [String: TensorInfo]) throws(AdapterError) -> LoKrForm {
        guard module != .classifier, !isEmbedding(module) else {
            throw .methodCannotAdapt(adapter: name, module: moduleName, reason: "an embedding table with LoKr; LoKr is served on Linear layers")
        }
        if tensors["t2"] != nil {
            throw .methodCannotAdapt(adapter: name, module: moduleName, reason: "a LoKr CP decomposition (lokr_t2, for convolutions)")
        }
        try requireOnly(["w1", "w1a", "w1b", "w2", "w2a", "w2b"], in: tensors, moduleName: moduleName)
        let shape = model.shape(of: module)!
        let first = try lokrFactor(1, of: moduleName, in: tensors)
        let second = try lokrFactor(2, of: moduleName, in: tensors)
        guard first.rows * second.rows == shape.outFeatures, first.columns * second.columns == shape.inFeatures else {
            let info = tensors["w1"] ?? tensors["w1a"] ?? tensors["w2"]!
            throw .shapeMismatch(
                adapter: name, tensor: info.name, shape: [first.rows * second.rows, first.columns * second.columns],
                expected: [shape.outFeatures, shape.inFeatures], reason: "kron(w1, w2) must have the shape of '\(moduleName)'")
        }
        let rank = matcher.rank(for: moduleName)
        let scaling = try checkedScaling(matcher.alpha(for: moduleName) / Double(rank), field: "alpha", moduleName: moduleName)
        // The cheaper per row of the two exact forms: a pair of rank r1·r2, or the factors applied as w1·X·w2ᵀ.
        let pairRank = first.left.shape[1] * second.left.shape[1]
        if case .linear = module {
            let delta = KroneckerDelta(w1: Self.product(first.left, first.right), w2: Self.product(second.left, second.right), scaling: scaling)
            if delta.cost < pairRank * (shape.inFeatures + shape.outFeatures) { return .kronecker(delta) }
        }
        let b = Self.kron(first.left, second.left)
        let a = Self.kron(first.right, second.right)
        return .pair(LoRAWeights(a: a, b: b, rank: a.shape[0], scaling: scaling))
    }

    /// `x · y` (small factors, at load).
    static func product(_ x: Tensor, _ y: Tensor) -> Tensor {
        let (m, k, n) = (x.shape[0], x.shape[1], y.shape[1])
        return Tensor(shape: [m, n], storage: FloatStorage(count: m * n) { out in
            for i in 0..<m {
                for j in 0..<n {
                    var sum: Float = 0
                    for l in 0..<k { sum += x.pointer[i * k + l] * y.pointer[l * n + j] }
                    out[i * n + j] = sum
                }
            }
        })
    }

    /// One LoKr factor as `left·right`: the saved pair, or the full matrix beside an identity on its narrower side.
    private func lokrFactor(_ index: Int, of moduleName: String, in tensors: [String: TensorInfo]) throws(AdapterError) -> (left: Tensor, right: Tensor, rows: Int, columns: Int) {
        let reason = "lokr_w\(index)_a·lokr_w\(index)_b of '\(moduleName)' must multiply"
        if tensors["w\(index)"] != nil {
            if let extra = tensors["w\(index)a"] ?? tensors["w\(index)b"] { throw .unexpectedTensor(adapter: name, tensor: extra.name) }
            let full = try factor("w\(index)", spelled: ".lokr_w\(index)", of: moduleName, in: tensors, shape: [nil, nil], reason: "lokr_w\(index) is a matrix")
            let (rows, columns) = (full.shape[0], full.shape[1])
            return columns <= rows
                ? (full, Self.identity(columns), rows, columns)
                : (Self.identity(rows), full, rows, columns)
        }
        let left = try factor("w\(index)a", spelled: ".lokr_w\(index)_a", of: moduleName, in: tensors, shape: [nil, nil], reason: reason)
        let right = try factor("w\(index)b", spelled: ".lokr_w\(index)_b", of: moduleName, in: tensors, shape: [left.shape[1], nil], reason: reason)
        return (left, right, left.shape[0], right.shape[1])
    }

    private func isEmbedding(_ module: BertModule) -> Bool {
        if case .embedding = module { return true }
        return false
    }

    /// The `n × n` identity.
    static func identity(_ n: Int) -> Tensor {
        Tensor(shape: [n, n], storage: FloatStorage(count: n * n) { out in
            out.initialize(repeating: 0)
            for i in 0..<n { out[i * n + i] = 1 }
        })
    }

    /// `kron(x, y)`: `[m·p, n·q]` for `x` `[m, n]` and `y` `[p, q]`, element `(i·p + k, j·q + l)` = `x[i, j]·y[k, l]`.
    static func kron(_ x: Tensor, _ y: Tensor) -> Tensor {
        let (m, n, p, q) = (x.shape[0], x.shape[1], y.shape[0], y.shape[1])
        return Tensor(shape: [m * p, n * q], storage: FloatStorage(count: m * p * n * q) { out in
            let width = n * q
            for i in 0..<m {
                for j in 0..<n {
                    let value = x.pointer[i * n + j]
                    for k in 0..<p {
                        for l in 0..<q { out[(i * p + k) * width + j * q + l] = value * y.pointer[k * q + l] }
                    }
                }
            }
        })
    }
}
