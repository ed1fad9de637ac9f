import CEngineKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One forward pass over a packed batch: the rows of all sequences are stacked without padding, so every
/// base product runs once for the whole batch, and attention runs per sequence (which is what masking gives).
///
/// Rows are ordered so that sequences using the same adapter are contiguous; each adapter's low-rank terms are
/// then two small matrix products over its block of rows (the SGMV idea of Punica and S-LoRA). Q, K and V are one
/// product; bias, GELU, residual, LayerNorm and (in INT8) dequantisation and the next input's quantisation are
/// fused into one pass after each product.
struct ForwardPass {
    let weights: BertWeights
    let config: BertConfig
    let plan: ExecutionPlan
    /// Records each FP32 product's input, for `Smoothing`'s calibration.
    var observer: Smoothing.Observer? = nil
    /// Called before each layer (it may block): background passes wait there for a gap in serving.
    var pause: () -> Void = {}

    /// A run of sequences that share one adapter.
    struct Group {
        let adapter: LoRAAdapter?
        /// Sequence indices (in sorted order).
        let sequences: Range<Int>
        /// Token rows.
        let rows: Range<Int>
    }

    /// The buffers of one pass and the batch's layout.
    struct Batch {
        /// Token rows (one per sequence once the last layer keeps only the rows the outputs read).
        var rows: Int
        var groups: [Group]
        var x: UnsafeMutablePointer<Float>
        var other: UnsafeMutablePointer<Float>
        let qkv: UnsafeMutablePointer<Float>
        let context: UnsafeMutablePointer<Float>
        let inner: UnsafeMutablePointer<Float>
        /// ModernBERT: the gated feed-forward activations (`gelu(input) · gate`), the input of `mlp.Wo`.
        let gated: UnsafeMutablePointer<Float>
        let loraScratch: UnsafeMutablePointer<Float>
        let pooled: UnsafeMutablePointer<Float>
        /// INT8: the current input quantised per row, its scales and zero points, and the int32 products; BF16: the
        /// product's input converted (two bytes per value, in `quantized`).
        let quantized: UnsafeMutablePointer<UInt8>
        let rowScales: UnsafeMutablePointer<Float>
        let rowZeros: UnsafeMutablePointer<Int32>
        let accumulator: UnsafeMutablePointer<Int32>
        /// LoKr's Kronecker terms' intermediate products (`Kernels.addKronecker`).
        let kroneckerScratch: UnsafeMutablePointer<Float>

        /// How `layer`'s int32 products in the accumulator turn back into floats.
        func dequantization(of layer: PreparedLinear) -> adk_dequantize {
            adk_dequantize(
                acc: accumulator, ld: Int64(layer.outFeatures), row_scale: rowScales, row_zero: rowZeros,
                col_scale: layer.scales, col_sum: layer.columnSums)
        }

        /// Where a quantised copy of the rows for `consumer`'s product goes, in 0…`maximum`, with its smoothing.
        func quantizedRows(for consumer: PreparedLinear, maximum: Int32) -> adk_quantized_rows {
            adk_quantized_rows(
                data: quantized, ld: Int64(consumer.inFeatures), scale: rowScales, zero: rowZeros, qmax: maximum,
                multiplier: consumer.inputMultipliers.map { UnsafePointer($0) })
        }
    }

    /// Runs `inputs`; with `depth`, only the embeddings and the first `depth` layers run and every output is the
    /// mean of the last hidden rows, not normalised (features for input routers; adapters are not applied).
    func run(_ inputs: [EncodedInput], depth: Int? = nil) -> [InferenceOutput] {
        guard !inputs.isEmpty else { return [] }
        if depth != nil { precondition(inputs.allSatisfy { $0.adapter == nil }, "features are taken from the base model") }
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
        let maxRank = max(1, sorted.compactMap { $0.adapter?.maxRank }.max() ?? 1)
        let kroneckerScratch = sorted.compactMap { $0.adapter?.kroneckerScratch }.max() ?? 0

        let hidden = config.hiddenSize
        let intermediate = config.intermediateSize
        let modern = config.modernBERT != nil
        // ModernBERT's `mlp.Wi` has input and gate side by side.
        let innerWidth = modern ? 2 * intermediate : intermediate
        let int8 = plan.precision == .int8
        let bf16 = plan.precision == .bf16
        // The INT8 and BF16 products run on a few rows more (PackedMatmul.paddedRows): BF16 ones write their
        // outputs' padding rows too.
        let tileRows = PackedMatmul.paddedRows(rows)
        let outputRows = bf16 ? tileRows : rows
        let arena = Arena(sizes: [
            outputRows * hidden * 4, outputRows * hidden * 4, outputRows * hidden * 3 * 4, outputRows * hidden * 4,
            outputRows * innerWidth * 4, rows * maxRank * 3 * 4, sorted.count * hidden * 2 * 4,
            int8 || bf16 ? tileRows * max(hidden, intermediate) * (bf16 ? 2 : 1) : 0, int8 ? rows * 4 : 0, int8 ? rows * 4 : 0,
            int8 ? tileRows * max(3 * hidden, innerWidth) * 4 : 0, rows * kroneckerScratch * 4, modern ? outputRows * intermediate * 4 : 0,
        ], pool: plan.scratch)
        defer { arena.deallocate() }
        var batch = Batch(
            rows: rows, groups: groups, x: arena[0], other: arena[1], qkv: arena[2], context: arena[3], inner: arena[4],
            gated: arena[12], loraScratch: arena[5], pooled: arena[6], quantized: arena[7], rowScales: arena[8], rowZeros: arena[9],
            accumulator: arena[10], kroneckerScratch: arena[11])

        var ids = [Int32](); ids.reserveCapacity(rows)
        var positions = [Int32](); positions.reserveCapacity(rows)
        for input in sorted {
            ids += input.ids
            positions += (0..<Int32(input.ids.count)).map { $0 + Int32(config.positionOffset) }
        }
        let tokenTypes = sorted.flatMap { $0.typeIds ?? [Int32](repeating: 0, count: $0.ids.count) }
        embed(ids: ids, positions: positions, tokenTypes: tokenTypes, batch: batch)

        let starts = offsets.map { Int32($0) }
        let lengths = sorted.map { Int32($0.ids.count) }
        let longest = sorted.map(\.ids.count).max() ?? 0
        let rotary = plan.rotary.map { tables in
            tables.positions >= longest ? tables : RotaryTables(layout: config.modernBERT!, headSize: config.headSize, positions: longest)
        }
        // Whether the last layer ran on the rows the outputs read only: sequence `s`'s is then row `s`.
        var readRowsKept = false
        for (layerIndex, layer) in plan.layers.prefix(depth ?? plan.layers.count).enumerated() {
            pause()
            let base = weights.layers[layerIndex]
            let next = layerIndex + 1 < plan.layers.count ? plan.layers[layerIndex + 1] : nil
            let adapters = groups.map { $0.adapter?.layers[layerIndex] }
            let scalings = groups.map { $0.adapter?.scalings[layerIndex] }
            let kroneckers = groups.map { $0.adapter?.kroneckers[layerIndex] }

            // ModernBERT's blocks after the first read the previous block's normalised output, not the stream.
            let input = modern && layerIndex > 0 ? batch.other : batch.x
            queryKeyValue(layer.queryKeyValue, input: input, adapters: adapters, scalings: scalings, kroneckers: kroneckers, batch: batch)
            attention(layerIndex: layerIndex, layer: layer, starts: starts, lengths: lengths, rotary: rotary, batch: batch)
            // The calibration pass (observer) measures every row's inputs, so it keeps them all.
            if depth == nil, layerIndex == plan.layers.count - 1, observer == nil,
               let kept = readRows(groups: groups, sequences: sorted, offsets: offsets) {
                batch.keep(rows: kept, width: hidden)
                readRowsKept = true
            }

            scaleInputs(slot: .attentionOutput, scalings: scalings, input: batch.context, width: hidden, batch: batch)
            if layer.attentionOutput.isQuantized { quantize(batch.context, for: layer.attentionOutput, batch: batch) }
            if modern {
                preNormBlockRest(
                    layerIndex: layerIndex, layer: layer, next: next, adapters: adapters, scalings: scalings, kroneckers: kroneckers, batch: batch)
                continue
            }
            dense(
                layer.attentionOutput, slot: .attentionOutput, adapters: adapters, scalings: scalings, kroneckers: kroneckers, input: batch.context, output: batch.other,
                op: .norm(residual: batch.x, base.attentionNorm), quantizeFor: layer.intermediate, batch: batch)
            swap(&batch.x, &batch.other)

            // IA³ input scaling of the intermediate layer works on a copy: its input is also the residual.
            var intermediateInput = batch.x
            if scalings.contains(where: { $0?[LinearSlot.intermediate.rawValue]?.scalesInput == true }) {
                batch.other.update(from: batch.x, count: batch.rows * hidden)
                scaleInputs(slot: .intermediate, scalings: scalings, input: batch.other, width: hidden, batch: batch)
                if layer.intermediate.isQuantized { quantize(batch.other, for: layer.intermediate, batch: batch) }
                intermediateInput = batch.other
            }
            dense(
                layer.intermediate, slot: .intermediate, adapters: adapters, scalings: scalings, kroneckers: kroneckers, input: intermediateInput, output: batch.inner,
                op: .gelu, quantizeFor: layer.output, batch: batch)
            if scaleInputs(slot: .output, scalings: scalings, input: batch.inner, width: config.intermediateSize, batch: batch), layer.output.isQuantized {
                quantize(batch.inner, for: layer.output, batch: batch)
            }
            dense(
                layer.output, slot: .output, adapters: adapters, scalings: scalings, kroneckers: kroneckers, input: batch.inner, output: batch.other,
                op: .norm(residual: batch.x, base.outputNorm), quantizeFor: next?.queryKeyValue,
                batch: batch)
            swap(&batch.x, &batch.other)
        }

        // ModernBERT: the last block left the stream's normalised copy (by `final_norm`, or by the next block's
        // `attn_norm` when `depth` stops early) in `other`.
        if modern, (depth ?? plan.layers.count) > 0 { swap(&batch.x, &batch.other) }

        var outputs = [InferenceOutput?](repeating: nil, count: inputs.count)
        if depth != nil {
            for sequence in sorted.indices {
                // Router features are the plain mean, whatever the model's sentence pooling.
                outputs[order[sequence]] = .embedding(SentencePooling(mode: .mean, normalize: false).pool(batch.x + offsets[sequence] * hidden, length: sorted[sequence].ids.count, width: hidden))
            }
            return outputs.map { $0! }
        }
        let rowOffsets = readRowsKept ? Array(sorted.indices) : offsets
        let rowLengths = readRowsKept ? [Int](repeating: 1, count: sorted.count) : sorted.map(\.ids.count)
        for group in groups {
            if let adapter = group.adapter, let head = adapter.head, head.perToken {
                for sequence in group.sequences {
                    outputs[order[sequence]] = classifyTokens(batch.x + offsets[sequence] * hidden, count: sorted[sequence].ids.count, head: head)
                }
            } else if let adapter = group.adapter, let head = adapter.head {
                let results = classify(
                    group: group, head: head, lora: adapter.pooler, offsets: rowOffsets, lengths: rowLengths, batch: batch)
                for (sequence, result) in zip(group.sequences, results) { outputs[order[sequence]] = result }
            } else {
                for sequence in group.sequences {
                    outputs[order[sequence]] = .embedding(config.pooling.pool(batch.x + rowOffsets[sequence] * hidden, length: rowLengths[sequence], width: hidden))
                }
            }
        }
        return outputs.map { $0! }
    }

    /// What follows a dense layer's product.
    enum Operation {
        case bias
        case gelu
        case norm(residual: UnsafeMutablePointer<Float>, LayerNormWeights)
        /// Pre-norm blocks: `residual += v + b`, and the output becomes the norm of the new residual.
        case preNorm(residual: UnsafeMutablePointer<Float>, LayerNormWeights)
    }

    /// `layer`'s base product of `input` (all rows): FP32 into `output`… or, in INT8, of the quantised input
    /// into the int32 accumulator (the epilogue dequantises).
    func product(_ layer: PreparedLinear, input: UnsafePointer<Float>, into output: UnsafeMutablePointer<Float>, batch: Batch) {
        let rows = batch.rows
        if let packed = layer.packed, layer.isQuantized {
            PackedMatmul.int8.multiply(rows: rows, a: batch.quantized, weights: packed, c: batch.accumulator)
        } else if let packed = layer.packed {
            // BF16: the input rows converted into the quantised input's buffer (two bytes each), the product in FP32.
            let converted = UnsafeMutableRawPointer(batch.quantized).assumingMemoryBound(to: UInt16.self)
            let width = Int64(layer.inFeatures)
            adk_convert_bf16(1, input, width, Int64(rows), width, converted, width)
            PackedMatmul.bf16.multiply(rows: rows, a: converted, weights: packed, c: output)
        } else {
            observer?.record(layer, input: input, rows: rows)
            layer.multiplyFP32(rows: rows, input: input, output: output, isa: plan.path.kernelISA)
        }
    }

    /// A dense layer with its LoRA terms and epilogue: `output = op(input·Wᵀ + b + Σ LoRA)`; in INT8 it also
    /// leaves `output` quantised for `quantizeFor`'s product when that runs in INT8.
    func dense(
        _ layer: PreparedLinear, slot: LinearSlot, adapters: [[LoRAWeights?]?], scalings: [[IA3Scaling?]?], kroneckers: [[KroneckerDelta?]?],
        input: UnsafeMutablePointer<Float>,
        output: UnsafeMutablePointer<Float>, op: Operation, quantizeFor consumer: PreparedLinear?, batch: Batch
    ) {
        let hasLoRA = adapters.contains { $0?[slot.rawValue] != nil }
        let scalesOutput = scalings.contains { $0?[slot.rawValue].map { !$0.scalesInput } ?? false }
        let hasKronecker = kroneckers.contains { $0?[slot.rawValue] != nil }
        product(layer, input: input, into: output, batch: batch)
        let int8 = layer.isQuantized
        if hasLoRA, fusesLoRA([slot], adapters: adapters, scalings: scalings, kroneckers: kroneckers) {
            // The terms' up-projections in the epilogue: in INT8 that saves two passes over the output (a separate
            // dequantisation and the terms'), in FP32 one.
            let terms = loraTerms([(0, slot)], adapters: adapters, input: input, width: layer.inFeatures, batch: batch)
            epilogue(op, layer: layer, output: output, dequantize: int8, bias: true, quantizeFor: consumer, terms: terms, batch: batch)
        } else if hasLoRA || scalesOutput || hasKronecker {
            if int8 { epilogue(.bias, layer: layer, output: output, dequantize: true, bias: true, batch: batch) }
            if hasLoRA {
                addLoRA([(0, slot)], adapters: adapters, input: input, width: layer.inFeatures, output: output, ldy: layer.outFeatures, batch: batch)
                applyDoRA(
                    slot: slot, adapters: adapters, output: output, ldy: layer.outFeatures,
                    bias: int8 ? UnsafePointer(layer.bias) : nil, batch: batch)
            }
            addKronecker(slot: slot, kroneckers: kroneckers, input: input, output: output, ldy: layer.outFeatures, batch: batch)
            scaleOutputs(
                slot: slot, scalings: scalings, output: output, ldy: layer.outFeatures, bias: layer.bias,
                biasAdded: int8, batch: batch)
            epilogue(op, layer: layer, output: output, dequantize: false, bias: !int8, quantizeFor: consumer, batch: batch)
        } else {
            epilogue(op, layer: layer, output: output, dequantize: int8, bias: true, quantizeFor: consumer, batch: batch)
        }
    }

    func epilogue(
        _ op: Operation, layer: PreparedLinear, output: UnsafeMutablePointer<Float>, dequantize: Bool, bias: Bool,
        quantizeFor consumer: PreparedLinear? = nil, terms: [adk_lora_term] = [], batch: Batch
    ) {
        let width = layer.outFeatures
        let count = Int64(terms.count)
        var dq = batch.dequantization(of: layer)
        let quantizeOutput = consumer?.isQuantized ?? false
        var q = consumer.map { batch.quantizedRows(for: $0, maximum: plan.activationMaximum) } ?? adk_quantized_rows()
        let isa = plan.path.kernelISA
        let eps = config.layerNormEps
        withUnsafePointer(to: &dq) { dqPointer in
            withUnsafePointer(to: &q) { qPointer in
                let dequantizing = dequantize ? dqPointer : nil
                let quantizing = quantizeOutput ? qPointer : nil
                let biasPointer = bias ? UnsafePointer(layer.bias) : nil
                switch op {
                case .bias:
                    adk_epilogue_lora(
                        isa, ADK_EPILOGUE_BIAS, output, Int64(width), Int64(batch.rows), Int64(width), dequantizing,
                        biasPointer, nil, 0, nil, nil, eps, quantizing, terms, count)
                case .gelu:
                    adk_epilogue_lora(
                        isa, ADK_EPILOGUE_BIAS_GELU, output, Int64(width), Int64(batch.rows), Int64(width), dequantizing,
                        biasPointer, nil, 0, nil, nil, eps, quantizing, terms, count)
                case .norm(let residual, let norm), .preNorm(let residual, let norm):
                    let kind: adk_epilogue_op
                    if case .preNorm = op { kind = ADK_EPILOGUE_BIAS_RESIDUAL_PRENORM } else { kind = ADK_EPILOGUE_BIAS_RESIDUAL_NORM }
                    adk_epilogue_lora(
                        isa, kind, output, Int64(width), Int64(batch.rows), Int64(width),
                        dequantizing, biasPointer, residual, Int64(width), norm.gamma.pointer, norm.beta.pointer, eps,
                        quantizing, terms, count)
                }
            }
        }
    }

    /// Quantises the rows of `input` into the batch's INT8 input for `consumer`'s product.
    func quantize(_ input: UnsafePointer<Float>, for consumer: PreparedLinear, batch: Batch) {
        let width = consumer.inFeatures
        var q = batch.quantizedRows(for: consumer, maximum: plan.activationMaximum)
        adk_quantize_rows(plan.path.kernelISA, input, Int64(width), Int64(batch.rows), Int64(width), &q)
    }

    /// Sums word, position and token-type embeddings (plus any embedding LoRA), then LayerNorm (and, in INT8, the
    /// first layer's quantised input).
    private func embed(ids: [Int32], positions: [Int32], tokenTypes: [Int32], batch: Batch) {
        let hidden = config.hiddenSize
        let x = batch.x
        let tables = weights.embeddings.map(\.pointer)
        for row in 0..<ids.count {
            let out = x + row * hidden
            let word = tables[0] + Int(ids[row]) * hidden
            if config.modernBERT != nil {
                // Word embeddings only: positions are rotary, and there are no token types.
                out.update(from: word, count: hidden)
                continue
            }
            let position = tables[1] + Int(positions[row]) * hidden
            let type = tables[2] + Int(tokenTypes[row]) * hidden
            for i in 0..<hidden { out[i] = word[i] + position[i] + type[i] }
        }
        let columns = [ids, positions, tokenTypes]
        for group in batch.groups {
            guard let adapter = group.adapter else { continue }
            for table in EmbeddingTable.allCases {
                guard let lora = adapter.embeddings[table.rawValue] else { continue }
                columns[table.rawValue].withUnsafeBufferPointer { values in
                    Kernels.addEmbeddingLoRA(
                        lora, ids: values.baseAddress! + group.rows.lowerBound, rows: group.rows.count,
                        y: x + group.rows.lowerBound * hidden, ldy: hidden, scratch: batch.loraScratch)
                }
            }
        }
        let first = plan.layers.first?.queryKeyValue
        var q = first.map { batch.quantizedRows(for: $0, maximum: plan.activationMaximum) } ?? adk_quantized_rows()
        let norm = weights.embeddingNorm
        let int8 = first?.isQuantized ?? false
        withUnsafePointer(to: &q) { q in
            adk_epilogue(
                plan.path.kernelISA, ADK_EPILOGUE_BIAS_RESIDUAL_NORM, x, Int64(hidden), Int64(ids.count), Int64(hidden),
                nil, nil, nil, 0, norm.gamma.pointer, norm.beta.pointer, config.layerNormEps, int8 ? q : nil)
        }
    }
}
