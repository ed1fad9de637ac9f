import AdapterdAPI
import AdapterdClient
import ArgumentParser
import Foundation

/// `adapterctl routes …`: a worker's routing rules.
struct RoutesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "routes", abstract: "Set, list and delete a worker's routes.", subcommands: [List.self, Assign.self, Delete.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List routes, highest priority first.")
        @OptionGroup var connection: BrokerOptions

        func run() async throws {
            try await ReplyPrinter.rpc {
                try await connection.call(.listRoutes, Adapterd_V1_ListRoutesRequest()) { reply in
                    let rows = [["NAME", "PRIORITY", "TOPIC", "SENSOR", "METADATA", "ADAPTER", "ROUTER", "MIN CONF"]] + reply.routes.map { route in
                        [route.name, String(route.priority), route.topic.isEmpty ? "*" : route.topic, route.sensorType.isEmpty ? "*" : route.sensorType,
                         route.metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","),
                         route.blend.isEmpty ? (route.adapter.isEmpty ? "-" : route.adapter) : route.blend.map { "\($0.name)×\($0.weight)" }.joined(separator: "+"),
                         route.router.isEmpty ? "-" : route.router,
                         route.router.isEmpty ? "-" : String(format: "%.2f", route.minConfidence)]
                    }
                    return Table.render(rows)
                }
            }
        }
    }

    struct Assign: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set", abstract: "Create or replace a route.")
        @OptionGroup var connection: BrokerOptions
        @Option(help: "Route name.") var name: String
        @Option(help: "MQTT topic filter the request topic must match (default: any).") var topic: String = ""
        @Option(name: .customLong("sensor-type"), help: "First topic level after …/infer (default: any).") var sensorType: String = ""
        @Option(help: "Required metadata, key=value (repeatable).") var metadata: [String] = []
        @Option(help: "Adapter that serves matching requests (with --router: when the router is unsure).") var adapter: String = ""
        @Option(help: "Input router that picks the adapter for requests naming none.") var router: String = ""
        @Option(name: .customLong("min-confidence"), help: "The router's choice serves at this confidence or above (0…1).") var minConfidence: Float = 0
        @Option(help: "Higher wins.") var priority: Int32 = 0
        @Option(help: "A part of a weighted blend that serves instead, NAME=WEIGHT (repeat it: 2 to 8 adapters).") var blend: [String] = []

        func validate() throws {
            guard !adapter.isEmpty || !router.isEmpty || !blend.isEmpty else { throw ValidationError("give --adapter, --router (or both), or --blend") }
            guard blend.allSatisfy({ $0.split(separator: "=").count == 2 && Float($0.split(separator: "=")[1]) != nil }) else {
                throw ValidationError("--blend takes NAME=WEIGHT")
            }
            guard metadata.allSatisfy({ $0.contains("=") }) else { throw ValidationError("--metadata takes key=value") }
        }

        func run() async throws {
            try await ReplyPrinter.rpc {
                var request = Adapterd_V1_SetRouteRequest()
                request.name = name
                request.topic = topic
                request.sensorType = sensorType
                request.adapter = adapter
                request.router = router
                request.minConfidence = minConfidence
                request.priority = priority
                request.blend = blend.map { part in
                    let pieces = part.split(separator: "=")
                    var weighted = Adapterd_V1_WeightedAdapter()
                    (weighted.name, weighted.weight) = (String(pieces[0]), Float(pieces[1])!)
                    return weighted
                }
                for pair in metadata {
                    let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                    request.metadata[parts[0]] = parts.count > 1 ? parts[1] : ""
                }
                try await connection.call(.setRoute, request) { reply in
                    "route \(reply.route.name) set"
                }
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a route.")
        @OptionGroup var connection: BrokerOptions
        @Argument(help: "Route name.") var name: String

        func run() async throws {
            try await ReplyPrinter.rpc {
                var request = Adapterd_V1_DeleteRouteRequest()
                request.name = name
                try await connection.call(.deleteRoute, request) { _ in "route \(name) deleted" }
            }
        }
    }
}
