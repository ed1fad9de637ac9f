import COpenBLAS
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One forward pass over a packed batch: the rows of all sequences are stacked without padding, so every
/// base product runs once for the whole batch, and attention runs per sequence (which is what masking gives).
///
/// Rows are ordered so that sequences using the same adapter are contiguous; each adapter's low-rank terms are
/// then two small matrix products over its block of rows (the SGMV idea of Punica and S-LoRA).
struct ForwardPass {
    let weights: BertWeights
    let config: BertConfig

    /// A run of sequences that share one adapter.
    struct Group {
        let adapter: LoRAAdapter?
        /// Sequence indices (in sorted order).
        let sequences: Range<Int>
        /// Token rows.
        let rows: Range<Int>
    }

    func run(_ inputs: [EncodedInput]) -> [InferenceOutput] {
        guard !inputs.isEmpty else { return [] }
        // Stable sort by adapter identity so each adapter's rows are one block; nil (base model) first.
        let order = inputs.indices.sorted { lhs, rhs in
            let l = inputs[lhs].adapter.map { UInt(bitPattern: ObjectIdentifier($0).hashValue) } ?? 0
            let r = inputs[rhs].adapter.map { UInt(bitPattern: ObjectIdentifier($0).hashValue) } ?? 0
            return l != r ? l < r : lhs < rhs
        }
        let sorted = order.map { inputs[$0] }
        var offsets: [Int] = []
        var rows = 0
        for input in sorted {
            offsets.append(rows)
            rows += input.ids.count
        }
        var groups: [Group] = []
        var start = 0
        for index in 1...sorted.count where index == sorted.count || sorted[index].adapter !== sorted[start].adapter {
            groups.append(Group(
                adapter: sorted[start].adapter, sequences: start..<index,
                rows: offsets[start]..<(index == sorted.count ? rows : offsets[index])))
            start = index
        }
        let maxLength = sorted.map(\.ids.count).max() ?? 0
        let maxRank = max(1, sorted.compactMap { $0.adapter?.maxRank }.max() ?? 1)

        let hidden = config.hiddenSize
        let intermediate = config.intermediateSize
        let workspace = Workspace(sizes: [
            rows * hidden, rows * hidden, rows * hidden, rows * hidden, rows * hidden, rows * hidden,
            rows * intermediate, maxLength * maxLength, rows * maxRank, sorted.count * hidden * 2,
        ])
        defer { workspace.deallocate() }
        var x = workspace[0], other = workspace[1]
        let q = workspace[2], k = workspace[3], v = workspace[4], context = workspace[5]
        let inner = workspace[6], scores = workspace[7], loraScratch = workspace[8], pooled = workspace[9]

        var ids = [Int32](); ids.reserveCapacity(rows)
        var positions = [Int32](); positions.reserveCapacity(rows)
        for input in sorted {
            ids += input.ids
            positions += (0..<Int32(input.ids.count))
        }
        let tokenTypes = [Int32](repeating: 0, count: rows)

        embed(ids: ids, positions: positions, tokenTypes: tokenTypes, groups: groups, into: x, scratch: loraScratch)

        let heads = config.numAttentionHeads
        let headSize = config.headSize
        let scale = 1 / Float(headSize).squareRoot()
        for (layerIndex, layer) in weights.layers.enumerated() {
            func project(_ slot: LinearSlot, from input: UnsafeMutablePointer<Float>, width: Int, to output: UnsafeMutablePointer<Float>, outWidth: Int) {
                Kernels.linear(layer[slot], x: input, ldx: width, rows: rows, y: output, ldy: outWidth)
                for group in groups {
                    guard let lora = group.adapter?.layers[layerIndex][slot.rawValue] else { continue }
                    Kernels.addLoRA(
                        lora, x: input + group.rows.lowerBound * width, ldx: width, rows: group.rows.count,
                        y: output + group.rows.lowerBound * outWidth, ldy: outWidth, scratch: loraScratch)
                }
            }
            project(.query, from: x, width: hidden, to: q, outWidth: hidden)
            project(.key, from: x, width: hidden, to: k, outWidth: hidden)
            project(.value, from: x, width: hidden, to: v, outWidth: hidden)

            for (sequence, input) in sorted.enumerated() {
                let length = input.ids.count
                let base = offsets[sequence] * hidden
                for head in 0..<heads {
                    let column = base + head * headSize
                    cblas_sgemm(
                        CblasRowMajor, CblasNoTrans, CblasTrans, Int32(length), Int32(length), Int32(headSize),
                        scale, q + column, Int32(hidden), k + column, Int32(hidden), 0, scores, Int32(length))
                    Kernels.softmaxRows(scores, rows: length, width: length)
                    cblas_sgemm(
                        CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(length), Int32(headSize), Int32(length),
                        1, scores, Int32(length), v + column, Int32(hidden), 0, context + column, Int32(hidden))
                }
            }

            project(.attentionOutput, from: context, width: hidden, to: other, outWidth: hidden)
            Kernels.add(x, into: other, count: rows * hidden)
            Kernels.layerNorm(other, rows: rows, width: hidden, weights: layer.attentionNorm, eps: config.layerNormEps)
            swap(&x, &other)

            project(.intermediate, from: x, width: hidden, to: inner, outWidth: intermediate)
            Kernels.gelu(inner, count: rows * intermediate)
            project(.output, from: inner, width: intermediate, to: other, outWidth: hidden)
            Kernels.add(x, into: other, count: rows * hidden)
            Kernels.layerNorm(other, rows: rows, width: hidden, weights: layer.outputNorm, eps: config.layerNormEps)
            swap(&x, &other)
        }

        var outputs = [InferenceOutput?](repeating: nil, count: inputs.count)
        for group in groups {
            if let adapter = group.adapter, let head = adapter.head {
                let results = classify(group: group, head: head, lora: adapter.pooler, offsets: offsets, hiddenStates: x, scratch: loraScratch, buffer: pooled)
                for (sequence, result) in zip(group.sequences, results) { outputs[order[sequence]] = result }
            } else {
                for sequence in group.sequences {
                    outputs[order[sequence]] = .embedding(meanPool(x + offsets[sequence] * hidden, length: sorted[sequence].ids.count))
                }
            }
        }
        return outputs.map { $0! }
    }

    /// Sums word, position and token-type embeddings (plus any embedding LoRA), then LayerNorm.
    private func embed(
        ids: [Int32], positions: [Int32], tokenTypes: [Int32], groups: [Group],
        into x: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>
    ) {
        let hidden = config.hiddenSize
        let tables = weights.embeddings.map(\.pointer)
        for row in 0..<ids.count {
            let out = x + row * hidden
            let word = tables[0] + Int(ids[row]) * hidden
            let position = tables[1] + Int(positions[row]) * hidden
            let type = tables[2] + Int(tokenTypes[row]) * hidden
            for i in 0..<hidden { out[i] = word[i] + position[i] + type[i] }
        }
        let columns = [ids, positions, tokenTypes]
        for group in groups {
            guard let adapter = group.adapter else { continue }
            for table in EmbeddingTable.allCases {
                guard let lora = adapter.embeddings[table.rawValue] else { continue }
                columns[table.rawValue].withUnsafeBufferPointer { values in
                    Kernels.addEmbeddingLoRA(
                        lora, ids: values.baseAddress! + group.rows.lowerBound, rows: group.rows.count,
                        y: x + group.rows.lowerBound * hidden, ldy: hidden, scratch: scratch)
                }
            }
        }
        Kernels.layerNorm(x, rows: ids.count, width: hidden, weights: weights.embeddingNorm, eps: config.layerNormEps)
    }

    /// BERT's pooler on each sequence's `[CLS]` row, then the adapter's classifier.
    private func classify(
        group: Group, head: ClassifierHead, lora: LoRAWeights?, offsets: [Int],
        hiddenStates: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, buffer: UnsafeMutablePointer<Float>
    ) -> [InferenceOutput] {
        let hidden = config.hiddenSize
        let count = group.sequences.count
        let cls = buffer
        let pooled = buffer + count * hidden
        for (row, sequence) in group.sequences.enumerated() {
            (cls + row * hidden).update(from: hiddenStates + offsets[sequence] * hidden, count: hidden)
        }
        // BertWeights without a pooler only reach here with the adapter's own (checked when loading).
        let poolerWeights = head.pooler ?? weights.pooler!
        Kernels.linear(poolerWeights, x: cls, ldx: hidden, rows: count, y: pooled, ldy: hidden)
        if let lora {
            Kernels.addLoRA(lora, x: cls, ldx: hidden, rows: count, y: pooled, ldy: hidden, scratch: scratch)
        }
        for i in 0..<(count * hidden) { pooled[i] = tanhf(pooled[i]) }
        let labels = head.classifier.outFeatures
        var logits = [Float](repeating: 0, count: count * labels)
        logits.withUnsafeMutableBufferPointer { out in
            Kernels.linear(head.classifier, x: pooled, ldx: hidden, rows: count, y: out.baseAddress!, ldy: labels)
        }
        return (0..<count).map { row in
            let values = Array(logits[(row * labels)..<((row + 1) * labels)])
            var best = 0
            for index in values.indices where values[index] > values[best] { best = index }
            return .classification(logits: values, labelIndex: best, label: head.labels[best])
        }
    }

    /// Mean over the sequence's rows, then L2 normalisation (sentence-transformers' pooling + Normalize).
    private func meanPool(_ rows: UnsafeMutablePointer<Float>, length: Int) -> [Float] {
        let hidden = config.hiddenSize
        var sums = [Double](repeating: 0, count: hidden)
        for row in 0..<length {
            for i in 0..<hidden { sums[i] += Double(rows[row * hidden + i]) }
        }
        let means = sums.map { $0 / Double(max(length, 1)) }
        let norm = max(means.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
        return means.map { Float($0 / norm) }
    }
}

/// Scratch buffers for one forward pass, carved from a single allocation.
struct Workspace {
    private let memory: UnsafeMutablePointer<Float>
    private let starts: [Int]

    init(sizes: [Int]) {
        var starts: [Int] = []
        var total = 0
        for size in sizes {
            starts.append(total)
            // Keep every buffer 64-byte aligned for the BLAS kernels.
            total += (size + 15) / 16 * 16
        }
        memory = UnsafeMutableRawPointer.allocate(byteCount: max(total, 1) * 4, alignment: 64).bindMemory(to: Float.self, capacity: max(total, 1))
        self.starts = starts
    }

    subscript(index: Int) -> UnsafeMutablePointer<Float> { memory + starts[index] }

    func deallocate() { UnsafeMutableRawPointer(memory).deallocate() }
}
