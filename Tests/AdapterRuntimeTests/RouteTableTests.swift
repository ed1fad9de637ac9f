import AdapterRuntime
import Testing

@Suite("RouteTable")
struct RouteTableTests {
    @Test("MQTT topic filters match as the broker matches them", arguments: [
        ("a/+/c", "a/b/c", true), ("a/+/c", "a/b/x", false), ("a/#", "a", true), ("a/#", "a/b/c", true),
        ("a/b", "a/b/c", false), ("+/+", "a/b", true), ("#", "x/y", true), ("a/+", "a", false),
    ])
    func topicFilters(filter: String, topic: String, expected: Bool) {
        #expect(RouteTable.matches(filter: filter, topic: topic) == expected)
    }

    @Test("malformed filters are named")
    func filterValidation() {
        #expect(RouteTable.problem(withFilter: "a/#/b") != nil)
        #expect(RouteTable.problem(withFilter: "a/b+") != nil)
        #expect(RouteTable.problem(withFilter: "a/+/#") == nil)
    }

    @Test("the highest-priority route whose topic, sensor type and metadata all match wins")
    func selection() {
        let routes = [
            RouteRecord(name: "vip", topic: "", sensorType: "", metadata: ["tier": "gold"], adapter: "gold", priority: 30),
            RouteRecord(name: "thermo", topic: "adapterd/v1/w/infer/thermostat/#", sensorType: "", metadata: [:], adapter: "climate", priority: 20),
            RouteRecord(name: "vibration", topic: "", sensorType: "vibration", metadata: [:], adapter: "severity", priority: 10),
        ]
        #expect(RouteTable.select(routes, topic: "adapterd/v1/w/infer/thermostat/t1", context: ["thermostat", "t1"], metadata: [:])?.name == "thermo")
        #expect(RouteTable.select(routes, topic: "adapterd/v1/w/infer/thermostat/t1", context: ["thermostat", "t1"], metadata: ["tier": "gold"])?.name == "vip")
        #expect(RouteTable.select(routes, topic: "adapterd/v1/w/infer/vibration/m7", context: ["vibration", "m7"], metadata: [:])?.name == "vibration")
        #expect(RouteTable.select(routes, topic: "adapterd/v1/w/infer", context: [], metadata: [:]) == nil)
    }
}
