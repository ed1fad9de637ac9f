/// One adapter's encoder terms folded into private copies of the layers they change and prepared for one plan (the
/// other layers are the plan's own): a batch whose every row uses the adapter runs on them at the base model's cost.
final class MergedLayers: Sendable {
    /// The plan with the adapter's layers in place of the base ones.
    let plan: ExecutionPlan
    /// What is left of the adapter to apply on that plan: its embedding and pooler terms and its head.
    let adapter: LoRAAdapter
    /// Bytes the merged layers hold.
    let bytes: Int

    init(plan: ExecutionPlan, adapter: LoRAAdapter, bytes: Int) {
        self.plan = plan
        self.adapter = adapter
        self.bytes = bytes
    }
}
