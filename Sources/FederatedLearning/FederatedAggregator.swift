import AdapterTraining
import Foundation

/// Turns one round's worker updates into the next global adapter: the example-weighted mean of each trained tensor
/// (under differential privacy, the clipped changes' plain mean plus Gaussian noise). Tensors no worker trains (every
/// LoRA A under FFA-LoRA) stay as the global adapter has them.
public struct FederatedAggregator: Sendable {
    /// How factors are combined.
    public var method: AggregationMethod
    /// Clipping and noise, when the run is differentially private.
    public var privacy: DifferentialPrivacy?

    /// An aggregator for `method`, with `privacy` when given.
    public init(method: AggregationMethod, privacy: DifferentialPrivacy? = nil) {
        self.method = method
        self.privacy = privacy
    }

    /// The names a worker must send back for `global`, sorted.
    public func trainedNames(of global: TensorSet) -> [String] {
        global.names.filter(method.trains)
    }

    /// Checks that `update` holds exactly the trained tensors of `global`, with their shapes, and finite values.
    public func check(_ update: ClientUpdate, against global: TensorSet) throws(FederatedError) {
        let expected = trainedNames(of: global)
        let names = update.tensors.names
        guard names == expected else {
            let missing = Set(expected).subtracting(names).sorted(), extra = Set(names).subtracting(expected).sorted()
            throw .unfit(reason: "from \(update.worker): missing [\(missing.prefix(3).joined(separator: ", "))], unexpected [\(extra.prefix(3).joined(separator: ", "))]")
        }
        for name in names {
            let entry = update.tensors.tensors[name]!
            guard entry.shape == global.tensors[name]!.shape else {
                throw .unfit(reason: "from \(update.worker): \(name) has shape \(entry.shape), the global adapter \(global.tensors[name]!.shape)")
            }
            guard entry.values.allSatisfy(\.isFinite) else { throw .unfit(reason: "from \(update.worker): \(name) holds values that are not finite") }
        }
        guard update.examples > 0 else { throw .unfit(reason: "from \(update.worker): trained on no examples") }
    }

    /// Refuses combinations that have no meaning: differential privacy's clipping and noise act on the averaged
    /// tensors, which re-factoring would not keep.
    public func validate() throws(FederatedError) {
        if privacy != nil, method == .productSVD {
            throw .invalidOptions("differential privacy runs with --method ffa or fedit: the SVD re-factoring of svd would not keep the noised mean")
        }
        try privacy?.validate()
    }

    /// The first round's reference: workers started from the same seeded adapter and sent every tensor back, so the
    /// first usable update gives the global layout, and the frozen tensors (the same on every worker, or the worker
    /// did not start where the run did) are taken from it. Returns that global and each update cut to the trained
    /// tensors, or the reason it is unusable.
    public func firstRound(_ updates: [ClientUpdate]) -> (global: TensorSet?, usable: [ClientUpdate], refused: [(worker: String, reason: String)]) {
        guard let first = updates.first(where: { !$0.tensors.tensors.isEmpty && $0.tensors.tensors.values.allSatisfy { $0.values.allSatisfy(\.isFinite) } }) else {
            return (nil, [], updates.map { ($0.worker, "no usable tensors") })
        }
        let global = first.tensors
        let frozen = global.names.filter { !method.trains($0) }
        var usable: [ClientUpdate] = [], refused: [(worker: String, reason: String)] = []
        for var update in updates {
            guard update.tensors.names == global.names else {
                refused.append((update.worker, "its tensors are not the run's (\(update.tensors.names.count) names, the run has \(global.names.count))"))
                continue
            }
            if let differing = frozen.first(where: { update.tensors.tensors[$0] != global.tensors[$0] }) {
                refused.append((update.worker, "its frozen \(differing) differs from the run's: it did not start from the run's initialisation"))
                continue
            }
            update.tensors = update.tensors.restricted(to: trainedNames(of: global))
            do {
                try check(update, against: global)
                usable.append(update)
            } catch {
                refused.append((update.worker, error.description))
            }
        }
        return (global, usable, refused)
    }

    /// The next global adapter from `updates` (each already `check`ed); `random` draws the privacy noise.
    public func aggregate(global: TensorSet, updates: [ClientUpdate], random: inout some RandomNumberGenerator) throws(FederatedError) -> TensorSet {
        guard !updates.isEmpty else { throw .noUpdates }
        let names = trainedNames(of: global)
        var next = global
        if let privacy {
            // Each worker's change, clipped over all its tensors together.
            let scales = updates.map { update -> Double in
                var squares = 0.0
                for name in names {
                    for (new, old) in zip(update.tensors.tensors[name]!.values, global.tensors[name]!.values) {
                        squares += Double(new - old) * Double(new - old)
                    }
                }
                let norm = squares.squareRoot()
                return norm > privacy.clip ? privacy.clip / norm : 1
            }
            let count = Double(updates.count)
            let deviation = privacy.noiseMultiplier * privacy.clip / count
            for name in names {
                let old = global.tensors[name]!.values
                var sum = [Double](repeating: 0, count: old.count)
                for (update, scale) in zip(updates, scales) {
                    for (i, new) in update.tensors.tensors[name]!.values.enumerated() { sum[i] += scale * Double(new - old[i]) }
                }
                next.tensors[name]!.values = old.indices.map { i in old[i] + Float(sum[i] / count + deviation * random.standardNormal()) }
            }
        } else {
            let total = Double(updates.reduce(0) { $0 + $1.examples })
            var merged: Set<String> = []
            if method == .productSVD {
                // Each LoRA pair at once: the exact mean of the products, re-factored to the rank.
                for aName in names where aName.hasSuffix("lora_A.weight") {
                    let bName = String(aName.dropLast("lora_A.weight".count)) + "lora_B.weight"
                    guard let aShape = global.tensors[aName]?.shape, let bShape = global.tensors[bName]?.shape, aShape.count == 2, bShape.count == 2 else { continue }
                    let result = LowRankMerge.merge(
                        pairs: updates.map { ($0.tensors.tensors[aName]!.values, $0.tensors.tensors[bName]!.values) },
                        weights: updates.map { Double($0.examples) / total }, rank: aShape[0], inputs: aShape[1], outputs: bShape[0])
                    next.tensors[aName]!.values = result.a
                    next.tensors[bName]!.values = result.b
                    merged.formUnion([aName, bName])
                }
            }
            for name in names where !merged.contains(name) {
                var sum = [Double](repeating: 0, count: global.tensors[name]!.values.count)
                for update in updates {
                    let weight = Double(update.examples) / total
                    for (i, value) in update.tensors.tensors[name]!.values.enumerated() { sum[i] += weight * Double(value) }
                }
                next.tensors[name]!.values = sum.map { Float($0) }
            }
        }
        return next
    }
}
