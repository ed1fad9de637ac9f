import CEngineKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What each adapter method adds to a layer's product, per group of rows: LoRA pairs (and the pairs AdaLoRA, LoHa,
/// LoKr and blends become), DoRA's rescaling, LoKr's Kronecker terms and IA³'s scalings.
extension ForwardPass {
    /// Adds each group's LoRA terms for one or two slots of one product (each a column offset in `output` and a
    /// slot) to its rows of `output`, in one pass of the team.
    func addLoRA(
        _ slots: [(column: Int, slot: LinearSlot)], adapters: [[LoRAWeights?]?], input: UnsafePointer<Float>, width: Int,
        output: UnsafeMutablePointer<Float>, ldy: Int, batch: Batch
    ) {
        let groups = zip(batch.groups, adapters).compactMap { group, layers -> Kernels.LoRAGroup? in
            let terms = slots.compactMap { column, slot in layers?[slot.rawValue].map { ($0, column) } }
            return terms.isEmpty ? nil : Kernels.LoRAGroup(rows: group.rows, terms: terms)
        }
        Kernels.addLoRA(groups, x: input, ldx: width, y: output, ldy: ldy, scratch: batch.loraScratch, isa: plan.path.kernelISA)
    }

    /// Each group's LoRA terms for `slots` of one product (each a column offset in the output and a slot) as terms of
    /// the fused epilogue (`adk_epilogue_lora`), their down-projections `x·Aᵀ` computed into the batch's LoRA scratch.
    func loraTerms(
        _ slots: [(column: Int, slot: LinearSlot)], adapters: [[LoRAWeights?]?], input: UnsafePointer<Float>, width: Int, batch: Batch
    ) -> [adk_lora_term] {
        var terms: [adk_lora_term] = []
        var scratch = batch.loraScratch
        for (group, layers) in zip(batch.groups, adapters) {
            for (column, slot) in slots {
                guard let lora = layers?[slot.rawValue] else { continue }
                terms.append(adk_lora_term(
                    row: Int64(group.rows.lowerBound), rows: Int64(group.rows.count), a: lora.a.pointer, bt: lora.scaledBTransposed.pointer,
                    rank: Int64(lora.rank), col: Int64(column), cols: Int64(lora.outFeatures), t: scratch))
                scratch += group.rows.count * lora.rank
            }
        }
        adk_lora_down_terms(plan.path.kernelISA, input, Int64(width), Int64(width), terms, Int64(terms.count))
        return terms
    }

    /// Whether the LoRA terms of `slots` can be fused into the epilogue: plain pairs (no DoRA rescaling, which
    /// applies to the sum before the bias) and no other method's term on those slots.
    func fusesLoRA(
        _ slots: [LinearSlot], adapters: [[LoRAWeights?]?], scalings: [[IA3Scaling?]?], kroneckers: [[KroneckerDelta?]?]
    ) -> Bool {
        slots.allSatisfy { slot in
            !adapters.contains { $0?[slot.rawValue]?.magnitudeScale != nil }
                && !kroneckers.contains { $0?[slot.rawValue] != nil }
                && !scalings.contains { $0?[slot.rawValue].map { !$0.scalesInput } ?? false }
        }
    }

    /// DoRA's rescaling, for the rows of each group whose term for `slot` carries a magnitude: `y = g ⊙ y` over
    /// `W·x + s·B·A·x`, or `y = g ⊙ (y − b) + b` when `bias` says the bias is already in `y` (the base term and the
    /// LoRA term scale alike; the bias does not, as in PEFT).
    func applyDoRA(
        slot: LinearSlot, adapters: [[LoRAWeights?]?], output: UnsafeMutablePointer<Float>, ldy: Int,
        bias: UnsafePointer<Float>?, batch: Batch
    ) {
        for (group, layers) in zip(batch.groups, adapters) {
            guard let magnitude = layers?[slot.rawValue]?.magnitudeScale else { continue }
            // As wide as the module (ModernBERT's fused Q, K and V: all three).
            let scale = magnitude.pointer, width = magnitude.count
            for row in group.rows {
                let y = output + row * ldy
                if let bias {
                    for j in 0..<width { y[j] = scale[j] * (y[j] - bias[j]) + bias[j] }
                } else {
                    for j in 0..<width { y[j] *= scale[j] }
                }
            }
        }
    }

    /// Adds each group's LoKr Kronecker term for `slot` to its rows of `output` (`input` rows are as wide as the
    /// layer's inputs).
    func addKronecker(
        slot: LinearSlot, kroneckers: [[KroneckerDelta?]?], input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, ldy: Int,
        batch: Batch
    ) {
        for (group, layer) in zip(batch.groups, kroneckers) {
            guard let delta = layer?[slot.rawValue] else { continue }
            Kernels.addKronecker(
                delta, x: input + group.rows.lowerBound * delta.inFeatures, rows: group.rows.count,
                y: output + group.rows.lowerBound * ldy, ldy: ldy, scratch: batch.kroneckerScratch)
        }
    }

    /// IA³ output scaling, for the rows of each group whose vector for `slot` scales outputs: `y = (W·x + b) ⊙ l`.
    /// When the bias is not in `y` yet (`biasAdded` false: a later step adds it), `y ⊙ l + b ⊙ (l − 1)` leaves the
    /// same result once it is.
    func scaleOutputs(
        slot: LinearSlot, scalings: [[IA3Scaling?]?], output: UnsafeMutablePointer<Float>, ldy: Int,
        bias: UnsafePointer<Float>, biasAdded: Bool, batch: Batch
    ) {
        for (group, layer) in zip(batch.groups, scalings) {
            guard let scaling = layer?[slot.rawValue], !scaling.scalesInput else { continue }
            let l = scaling.vector.pointer, width = scaling.vector.count
            for row in group.rows {
                let y = output + row * ldy
                if biasAdded {
                    for j in 0..<width { y[j] *= l[j] }
                } else {
                    for j in 0..<width { y[j] = y[j] * l[j] + bias[j] * (l[j] - 1) }
                }
            }
        }
    }

    /// IA³ input scaling, in place, for the rows of each group whose vector for `slot` scales inputs:
    /// `x ⊙ l` before the product. Returns whether any row was scaled.
    @discardableResult
    func scaleInputs(slot: LinearSlot, scalings: [[IA3Scaling?]?], input: UnsafeMutablePointer<Float>, width: Int, batch: Batch) -> Bool {
        var scaled = false
        for (group, layer) in zip(batch.groups, scalings) {
            guard let scaling = layer?[slot.rawValue], scaling.scalesInput else { continue }
            let l = scaling.vector.pointer
            for row in group.rows {
                let x = input + row * width
                for j in 0..<width { x[j] *= l[j] }
            }
            scaled = true
        }
        return scaled
    }

    /// `layer`'s INT8 product dequantised with its bias into `output`, plus two LoRA terms of one adapter over
    /// `input` (each a column offset in `output` and its weights).
    func dequantizeWithLoRAPair(
        _ layer: PreparedLinear, output: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, first: (Int, LoRAWeights),
        second: (Int, LoRAWeights), batch: Batch
    ) {
        let width = layer.outFeatures
        var dq = batch.dequantization(of: layer)
        let (one, two) = (first.1, second.1)
        adk_dequantize_lora_pair(
            plan.path.kernelISA, output, Int64(width), Int64(batch.rows), Int64(width), &dq, layer.bias, input,
            Int64(layer.inFeatures), Int64(one.inFeatures), Int64(one.outFeatures),
            one.a.pointer, one.scaledBTransposed.pointer, Int64(one.rank), output + first.0, batch.loraScratch,
            two.a.pointer, two.scaledBTransposed.pointer, Int64(two.rank), output + second.0, batch.loraScratch + batch.rows * one.rank)
    }
}
