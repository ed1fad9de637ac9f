import CEngineKernels

/// ModernBERT's blocks: pre-norm, with a gated feed-forward layer. The stream stays in the batch's `x`; each norm
/// writes the next product's input to `other` (`ADK_EPILOGUE_BIAS_RESIDUAL_PRENORM`).
extension ForwardPass {
    /// The block after its attention: `x += Wo·context` and `other = mlp_norm(x)`; `Wi` into input | gate;
    /// `gelu(input) · gate`; `x += Wo·gated` and `other` = the next block's `attn_norm(x)` (the last block's
    /// `final_norm`), quantised for the next product in INT8.
    func preNormBlockRest(
        layerIndex: Int, layer: ExecutionPlan.Layer, next: ExecutionPlan.Layer?, adapters: [[LoRAWeights?]?],
        scalings: [[IA3Scaling?]?], kroneckers: [[KroneckerDelta?]?], batch: Batch
    ) {
        let base = weights.layers[layerIndex]
        let hidden = config.hiddenSize
        let intermediate = config.intermediateSize
        dense(
            layer.attentionOutput, slot: .attentionOutput, adapters: adapters, scalings: scalings, kroneckers: kroneckers,
            input: batch.context, output: batch.other, op: .preNorm(residual: batch.x, base.attentionNorm),
            quantizeFor: layer.intermediate, batch: batch)
        // The feed-forward input is a normalised copy, not the stream, so IA³ may scale it in place.
        if scaleInputs(slot: .intermediate, scalings: scalings, input: batch.other, width: hidden, batch: batch), layer.intermediate.isQuantized {
            quantize(batch.other, for: layer.intermediate, batch: batch)
        }
        dense(
            layer.intermediate, slot: .intermediate, adapters: adapters, scalings: scalings, kroneckers: kroneckers,
            input: batch.other, output: batch.inner, op: .bias, quantizeFor: nil, batch: batch)
        var q = batch.quantizedRows(for: layer.output, maximum: plan.activationMaximum)
        withUnsafePointer(to: &q) { q in
            adk_geglu(
                plan.path.kernelISA, batch.inner, Int64(2 * intermediate), Int64(batch.rows), Int64(intermediate), batch.gated,
                Int64(intermediate), layer.output.isQuantized ? q : nil)
        }
        if scaleInputs(slot: .output, scalings: scalings, input: batch.gated, width: intermediate, batch: batch), layer.output.isQuantized {
            quantize(batch.gated, for: layer.output, batch: batch)
        }
        dense(
            layer.output, slot: .output, adapters: adapters, scalings: scalings, kroneckers: kroneckers, input: batch.gated,
            output: batch.other, op: .preNorm(residual: batch.x, base.outputNorm), quantizeFor: next?.queryKeyValue, batch: batch)
    }
}
