
/// Chooses the route for an inference request: the highest-priority route whose topic filter, sensor type and
/// metadata all match (ties by route name). Routes are compiled once (filters split into levels), so a decision
/// costs one split of the request topic and a scan without allocation.
public struct RouteTable: Sendable {
    struct Compiled: Sendable {
        let record: RouteRecord
        /// Filter levels; nil matches any topic.
        let levels: [String]?
        let metadata: [(key: String, value: String)]
    }

    /// The routes, highest priority first.
    public let routes: [RouteRecord]
    private let compiled: [Compiled]

    /// A router over `routes`, which must be sorted by priority, highest first.
    public init(_ routes: [RouteRecord]) {
        self.routes = routes
        compiled = routes.map { route in
            Compiled(
                record: route,
                levels: route.topic.isEmpty ? nil : route.topic.split(separator: "/", omittingEmptySubsequences: false).map(String.init),
                metadata: route.metadataPairs.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        }
    }

    /// The winning route, or nil when none matches.
    public func select(topic: String, context: [String], metadata: [String: String]) -> RouteRecord? {
        let topicLevels = topic.split(separator: "/", omittingEmptySubsequences: false)
        let sensorType = context.first
        for route in compiled {
            if let levels = route.levels, !Self.matches(levels, topicLevels) { continue }
            if !route.record.sensorType.isEmpty, sensorType != route.record.sensorType { continue }
            if !route.metadata.allSatisfy({ metadata[$0.key] == $0.value }) { continue }
            return route.record
        }
        return nil
    }

    /// The winning route among `routes` (sorted by priority, highest first), or nil.
    public static func select(_ routes: [RouteRecord], topic: String, context: [String], metadata: [String: String]) -> RouteRecord? {
        RouteTable(routes).select(topic: topic, context: context, metadata: metadata)
    }

    /// MQTT topic-filter matching: `+` is one level, a final `#` any number of levels (the parent level included).
    public static func matches(filter: String, topic: String) -> Bool {
        matches(filter.split(separator: "/", omittingEmptySubsequences: false).map(String.init), topic.split(separator: "/", omittingEmptySubsequences: false))
    }

    static func matches(_ filterLevels: [String], _ topicLevels: [Substring]) -> Bool {
        for (index, level) in filterLevels.enumerated() {
            if level == "#" { return true }
            guard index < topicLevels.count else { return false }
            if level != "+" && level != topicLevels[index] { return false }
        }
        return filterLevels.count == topicLevels.count
    }

    /// What is wrong with a topic filter, or nil: `#` only as the last level, wildcards only as whole levels.
    public static func problem(withFilter filter: String) -> String? {
        let levels = filter.split(separator: "/", omittingEmptySubsequences: false)
        for (index, level) in levels.enumerated() {
            if level.contains("#") && (level != "#" || index != levels.count - 1) { return "'#' must be the whole last level" }
            if level.contains("+") && level != "+" { return "'+' must be a whole level" }
        }
        return nil
    }
}
