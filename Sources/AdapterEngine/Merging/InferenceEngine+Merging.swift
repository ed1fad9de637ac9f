import CEngineKernels

/// Adapters merged into private copies of the layers they change, for batches whose every row uses one adapter.
extension InferenceEngine {
    /// Merges `adapter`'s encoder terms (every method: LoRA-family pairs, DoRA, IA³, LoKr) into copies of the
    /// layers they change, prepared for this engine's precision (and, with the label check, for its more exact
    /// layers too), when the engine's `mergeBudget` has room for them. From then on a batch whose rows all use
    /// `adapter` runs on those layers at the base model's cost, and a mixed batch runs the terms unmerged as before.
    /// With the label check, each pass's margin becomes the larger of the two ways' calibrated errors.
    ///
    /// Slow (tens of milliseconds per adapted layer, on the calling thread alone, calling `pause` between layers):
    /// run it off the serving path. Returns whether `adapter` is merged for this engine now.
    @discardableResult
    public func prepareMerged(_ adapter: LoRAAdapter, pause: @escaping () -> Void = {}) -> Bool {
        guard let mergeBudget, adapter.changesEncoder else { return false }
        let changed = adapter.changedGroups
        let plans = mergedPlans
        if plans.allSatisfy({ adapter.merges.layers(for: $0.id) != nil }) { return true }
        guard mergeBudget.begin(adapter) else { return false }
        defer { mergeBudget.end(adapter) }
        let sizes = plans.map { $0.bytes(of: changed) }
        guard mergeBudget.reserve(sizes.reduce(0, +), for: adapter, plans: plans.map(\.id)) else { return false }
        let threads = adk_begin_sequential()
        defer { adk_end_sequential(threads) }
        // The unmerged rows' error first: mixed batches keep running them.
        calibrateLabelCheck(adapter, pause: pause)

        do {
            var weights = model.weights
            MergedModel.mergeEncoder(adapter, into: &weights, pause: pause)
            let rest = adapter.withoutEncoderTerms
            for (plan, bytes) in zip(plans, sizes) {
                let merged = ExecutionPlan(merging: weights, changed: changed, into: plan, pause: pause)
                adapter.merges.keep(MergedLayers(plan: merged, adapter: rest, bytes: bytes), for: plan.id)
            }
        }
        // Merging read the mapped base layers back in; the plans hold their own copies.
        for (layer, _) in changed {
            for linear in model.weights.layers[layer].linears { linear.weight.storage.releaseResidentPages() }
        }
        // The merged copies of the weights and the transposes made while preparing them (several MiB) are freed by
        // now; glibc keeps such memory in its heap unless asked (a worker with one merged (q, v) adapter held 13 MiB
        // more than its merged layers without this).
        adk_release_free_memory()
        if let labelCheck, let problem = adapter.head?.problemType, problem != .regression {
            let errors = calibrationErrors(adapter, check: labelCheck, problem: problem, pause: pause).errors
            adapter.labelCheck.raiseCalibratedErrors(labelCheck.id, to: errors)
        }
        return true
    }

    /// One forward pass on `plan`, or, when every row uses one adapter merged for `plan`, on its merged layers (an
    /// adapter not merged yet is then offered to the merge budget).
    func forward(_ plan: ExecutionPlan, _ inputs: [EncodedInput], pause: @escaping () -> Void) -> [InferenceOutput] {
        var (plan, inputs) = (plan, inputs)
        if let mergeBudget, let adapter = inputs.first?.adapter, inputs.allSatisfy({ $0.adapter === adapter }) {
            if let merged = adapter.merges.layers(for: plan.id) {
                mergeBudget.used(adapter)
                plan = merged.plan
                inputs = inputs.map { EncodedInput(ids: $0.ids, adapter: merged.adapter, typeIds: $0.typeIds) }
            } else if adapter.changesEncoder, mergedPlans.contains(where: { $0 === plan }) {
                mergeBudget.request(adapter)
            }
        }
        return ForwardPass(weights: model.weights, config: model.config, plan: plan, pause: pause).run(inputs)
    }

    /// The plans an adapter is merged for: the engine's own and its label check's, except FP32 where BF16 stands
    /// before it: FP32 then answers a few rows in a hundred, and its merged copies would take the most memory (40.6
    /// of an every-layer adapter's 71 MiB in INT8 with BF16 and FP32).
    var mergedPlans: [ExecutionPlan] {
        guard let passes = labelCheck?.passes else { return [plan] }
        return passes.count > 2 ? Array(passes.dropLast()) : passes
    }

    /// Bytes of merged layers the engine holds for adapters (`prepareMerged`).
    public var mergedBytes: Int { mergeBudget?.bytes ?? 0 }
}
