import AdapterdClient

/// Which workers a rollout targets: by id (`id=w1|w2`) and/or by labels (`site=lab,hardware=x86`); every
/// condition must hold, and an empty selector takes every worker.
public struct FleetSelector: Sendable, Equatable, CustomStringConvertible {
    /// Worker ids to take (empty: any).
    public var ids: Set<String>
    /// Label values to take, by key (a worker must match every key).
    public var labels: [String: Set<String>]

    /// Parses `key=value[|value…],…` (`id` selects worker ids).
    public init(_ text: String) throws(FleetError) {
        ids = []
        labels = [:]
        for term in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !term.isEmpty {
            let parts = term.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { throw .invalidSelector("'\(term)' is not key=value") }
            let values = Set(parts[1].split(separator: "|").map(String.init))
            if parts[0] == "id" { ids.formUnion(values) } else { labels[parts[0], default: []].formUnion(values) }
        }
    }

    /// Whether `status` is selected.
    public func matches(_ status: WorkerStatus) -> Bool {
        if !ids.isEmpty, !ids.contains(status.worker) { return false }
        for (key, values) in labels where !values.contains(status.labels?[key] ?? "") { return false }
        return true
    }

    public var description: String {
        var terms: [String] = []
        if !ids.isEmpty { terms.append("id=" + ids.sorted().joined(separator: "|")) }
        for (key, values) in labels.sorted(by: { $0.key < $1.key }) { terms.append("\(key)=" + values.sorted().joined(separator: "|")) }
        return terms.joined(separator: ",")
    }
}
