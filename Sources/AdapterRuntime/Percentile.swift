/// Nearest-rank percentiles over sorted samples, as the metrics documents and the rollout guard report them.
public enum Percentile {
    /// The sample at rank ⌊count × p⌋ (clamped to the last) of `sorted`, which must be non-empty and ascending.
    public static func of(_ sorted: [Double], _ p: Double) -> Double {
        sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.down)))]
    }
}
