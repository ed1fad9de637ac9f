import AdapterRuntime

/// Chooses the route for an inference request: the highest-priority route whose topic filter, sensor type and
/// metadata all match (ties by route name).
public enum Router {
    /// The winning route, or nil when none matches. `routes` must be sorted by priority, highest first.
    public static func select(_ routes: [RouteRecord], topic: String, context: [String], metadata: [String: String]) -> RouteRecord? {
        routes.first { route in
            (route.topic.isEmpty || matches(filter: route.topic, topic: topic))
                && (route.sensorType.isEmpty || context.first == route.sensorType)
                && route.metadataPairs.allSatisfy { metadata[$0.key] == $0.value }
        }
    }

    /// MQTT topic-filter matching: `+` is one level, a final `#` any number of levels (the parent level included).
    public static func matches(filter: String, topic: String) -> Bool {
        let filterLevels = filter.split(separator: "/", omittingEmptySubsequences: false)
        let topicLevels = topic.split(separator: "/", omittingEmptySubsequences: false)
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
