/// One adapter's encoder terms folded into private copies of the layers they change and prepared for one plan (the
/// other layers are the plan's own): a batch whose every row uses the adapter runs on them at the base model's cost.
/// Its bytes go back to the engine's `MergeBudget` when it is released with the adapter.
final class MergedLayers: Sendable {
    /// The plan with the adapter's layers in place of the base ones.
    let plan: ExecutionPlan
    /// What is left of the adapter to apply on that plan: its embedding and pooler terms and its head.
    let adapter: LoRAAdapter
    /// Bytes the merged layers hold.
    let bytes: Int
    private let budget: MergeBudget

    /// Takes over `bytes` already reserved in `budget`.
    init(plan: ExecutionPlan, adapter: LoRAAdapter, bytes: Int, budget: MergeBudget) {
        self.plan = plan
        self.adapter = adapter
        self.bytes = bytes
        self.budget = budget
    }

    deinit { budget.release(bytes) }
}
