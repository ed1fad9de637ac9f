import AdapterdAPI
import AdapterRuntime

extension Adapterd_V1_AdapterInfo {
    /// The wire description of a registered adapter version.
    init(_ entry: AdapterRegistry.Entry) {
        self.init()
        name = entry.name
        version = entry.version
        state = entry.record.state.rawValue
        bytes = Int64(entry.record.sizeBytes)
        sha256 = entry.sha256
        rank = Int32(entry.record.rank)
        targets = entry.record.targets.split(separator: ",").map(String.init)
        labels = entry.record.labels.split(separator: "\n").map(String.init)
        path = entry.path
        kind = entry.kind.rawValue
    }
}

extension Adapterd_V1_Route {
    /// The wire description of a stored route.
    init(_ record: RouteRecord) {
        self.init()
        name = record.name
        topic = record.topic
        sensorType = record.sensorType
        metadata = record.metadataPairs
        adapter = record.adapter
        priority = Int32(record.priority)
        router = record.router
        blend = record.blendParts.map { part in
            var weighted = Adapterd_V1_WeightedAdapter()
            (weighted.name, weighted.weight) = (part.name, part.weight)
            return weighted
        }
        minConfidence = Float(record.minConfidence)
    }
}
