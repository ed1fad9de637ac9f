import AdapterdAPI
import AdapterdClient
import AdapterdCore
import AdapterdTestSupport
import AdapterRuntime
import Foundation
import MQTTRPC
import Testing

/// Routes that serve a weighted blend, with the handlers called directly.
@Suite("Blends on routes")
struct RouteBlendTests {
    static func setRoute(_ offline: OfflineServices, name: String, sensorType: String, blend: [(String, Float)], adapter: String = "") async throws -> Adapterd_V1_SetRouteReply {
        var request = Adapterd_V1_SetRouteRequest()
        (request.name, request.sensorType, request.adapter) = (name, sensorType, adapter)
        request.blend = blend.map { name, weight in
            var part = Adapterd_V1_WeightedAdapter()
            (part.name, part.weight) = (name, weight)
            return part
        }
        return try await RoutingHandlers(services: offline.services).setRoute(request, RPCContext())
    }

    @Test("a request matching a route with a blend gets the same logits as an Infer naming that blend, routed by the route, and the blend survives a restart of the registry")
    func routeServesBlend() async throws {
        let offline = try await BlendInferTests.services()
        defer { withExtendedLifetime(offline) {} }
        let reference = try JSONDecoder().decode(
            BlendInferTests.Reference.self, from: Data(contentsOf: URL(fileURLWithPath: BlendInferTests.blends + "/blends.json")))
        let blend = try #require(reference.blends.first)
        let parts = blend.parts.map { ($0.adapter, $0.weight) }
        let set = try await Self.setRoute(offline, name: "mixed", sensorType: "voice", blend: parts)
        #expect(set.route.blend.map(\.name) == blend.parts.map(\.adapter) && set.route.blend.map(\.weight) == blend.parts.map(\.weight))
        let listed = try await RoutingHandlers(services: offline.services).listRoutes(Adapterd_V1_ListRoutesRequest(), RPCContext())
        #expect(listed.routes.first { $0.name == "mixed" }?.blend.count == parts.count)
        let infer = InferenceHandlers(services: offline.services)
        for expected in blend.cases {
            var request = Adapterd_V1_InferRequest()
            request.text = expected.text
            let reply = try await infer.infer(request, RPCContext(topic: "adapterd/v1/w/infer/voice/kitchen", sensorPath: ["voice", "kitchen"]))
            #expect(Harness.maxAbsDiff(reply.logits, expected.logits) < 1e-4, "\(expected.text)")
            #expect(reply.routedBy == "route" && reply.adapter == "blend" && reply.blend.map(\.name) == blend.parts.map(\.adapter))
        }
        // The route is in SQLite with its blend.
        let stored = try AdapterStore(dataDirectory: offline.dataDirectory).routes()
        #expect(stored.first { $0.name == "mixed" }?.blendParts.map(\.name) == blend.parts.map(\.adapter))
    }

    @Test("a route blend of one part, a repeated name, a weight that is not finite, beside an adapter, or naming an unloaded adapter is refused")
    func refusals() async throws {
        let offline = try await BlendInferTests.services()
        defer { withExtendedLifetime(offline) {} }
        func status(_ blend: [(String, Float)], adapter: String = "") async -> RPCStatus? {
            do {
                _ = try await Self.setRoute(offline, name: "bad", sensorType: "voice", blend: blend, adapter: adapter)
                return .ok
            } catch {
                return RPCError(mapping: error).status
            }
        }
        #expect(await status([("lora-qv", 1)]) == .invalidArgument)
        #expect(await status([("lora-qv", 0.5), ("lora-qv", 0.5)]) == .invalidArgument)
        #expect(await status([("lora-qv", .nan), ("loha-qv", 0.5)]) == .invalidArgument)
        #expect(await status([("lora-qv", 0.5), ("loha-qv", 0.5)], adapter: "lora-qv") == .invalidArgument)
        #expect(await status([("lora-qv", 0.5), ("missing", 0.5)]) == .failedPrecondition)
        #expect(await offline.services.registry.routes.isEmpty, "no refused route was kept")
    }
}
