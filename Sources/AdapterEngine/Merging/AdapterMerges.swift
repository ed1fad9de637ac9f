import Synchronization

/// The merged layers engines prepared for one adapter (`InferenceEngine.prepareMerged`), by plan. Held by the
/// adapter, so that they live and die with that version.
public final class AdapterMerges: Sendable {
    private let merged = Mutex<[UInt64: MergedLayers]>([:])

    init() {}

    /// The merged layers prepared for the plan `plan` (`ExecutionPlan.id`).
    func layers(for plan: UInt64) -> MergedLayers? { merged.withLock { $0[plan] } }

    /// Keeps `layers` for the plan `plan`, unless some are kept already (the newer ones are then dropped).
    func keep(_ layers: MergedLayers, for plan: UInt64) {
        merged.withLock { merged in
            if merged[plan] == nil { merged[plan] = layers }
        }
    }

    /// Drops the merged layers of `plans` (a batch running on them keeps them until it ends).
    func remove(plans: [UInt64]) {
        merged.withLock { merged in for plan in plans { merged[plan] = nil } }
    }

    /// Bytes of merged layers held for this adapter, over every engine.
    public var bytes: Int { merged.withLock { $0.values.reduce(0) { $0 + $1.bytes } } }
}
