import AdapterdAPI
import AdapterdCore
import AdapterdTestSupport
import AdapterEngine
import AdapterFormats
import Foundation
import InputRouting
import Testing

/// Input routers in the worker, through its handlers (no broker).
@Suite("Input routing in the worker")
struct InputRoutingWorkerTests {
    static let domains = ["chat", "climate", "lights", "machine", "medical", "security"]

    /// Services with an adapter per domain (the `intent` fixture's files under six names), router `hub` v1 fitted
    /// on the fit set, and a route sending everything through it.
    static func worker(minConfidence: Float = 0, fallback: String = "chat") async throws -> (OfflineServices, AdapterHandlers, InferenceHandlers) {
        let offline = try OfflineServices()
        let adapters = AdapterHandlers(services: offline.services)
        for name in domains {
            _ = try await adapters.load(Self.load(name, "v1", Harness.adapterDirectory("intent")), RPCContext())
        }
        let (directory, _) = try RoutingFixtures.fitRouter(engine: offline.services.engine)
        let loaded = try await adapters.load(Self.load("hub", "v1", directory), RPCContext())
        #expect(loaded.adapter.kind == "router")
        var route = Adapterd_V1_SetRouteRequest()
        route.name = "voice"
        route.router = "hub"
        route.adapter = fallback
        route.minConfidence = minConfidence
        _ = try await RoutingHandlers(services: offline.services).setRoute(route, RPCContext())
        return (offline, adapters, InferenceHandlers(services: offline.services))
    }

    /// The fit set with climate and lights labelled the other way round: a router version that decides differently.
    static var climateAndLightsSwapped: [RoutingExample] {
        RoutingFixtures.fit.map { example in
            RoutingExample(text: example.text, adapter: example.adapter == "climate" ? "lights" : example.adapter == "lights" ? "climate" : example.adapter)
        }
    }

    static func load(_ name: String, _ version: String, _ path: String) -> Adapterd_V1_LoadAdapterRequest {
        var request = Adapterd_V1_LoadAdapterRequest()
        request.name = name
        request.version = version
        request.path = path
        return request
    }

    static func infer(_ text: String, adapter: String = "", session: String = "") -> Adapterd_V1_InferRequest {
        var request = Adapterd_V1_InferRequest()
        request.text = text
        request.adapter = adapter
        request.session = session
        return request
    }

    @Test("A request naming no adapter is served by the router's choice, and the reply says so")
    func routerChooses() async throws {
        let (offline, _, inference) = try await Self.worker()
        defer { withExtendedLifetime(offline) {} }
        let reply = try await inference.infer(Self.infer("it's freezing in here"), RPCContext())
        #expect(reply.adapter == "climate")
        #expect(reply.routedBy == "router")
        #expect(reply.router == "hub" && reply.routerVersion == "v1" && reply.routerChoice == "climate")
        #expect(reply.routerConfidence > 0 && reply.routerConfidence <= 1)
        #expect(!reply.label.isEmpty)
    }

    @Test("A router pushed as a new version changes decisions once activated, and back on rollback")
    func versionsChangeDecisions() async throws {
        let (offline, adapters, inference) = try await Self.worker()
        defer { withExtendedLifetime(offline) {} }
        // v2 learned climate and lights the other way round.
        let (directory, _) = try RoutingFixtures.fitRouter(Self.climateAndLightsSwapped, engine: offline.services.engine)
        _ = try await adapters.load(Self.load("hub", "v2", directory), RPCContext())
        let text = "it's freezing in here"
        #expect(try await inference.infer(Self.infer(text), RPCContext()).adapter == "climate", "a staged router version must not serve")

        var activate = Adapterd_V1_ActivateAdapterRequest()
        activate.name = "hub"
        activate.version = "v2"
        _ = try await adapters.activate(activate, RPCContext())
        let afterActivation = try await inference.infer(Self.infer(text), RPCContext())
        #expect(afterActivation.adapter == "lights")
        #expect(afterActivation.routerVersion == "v2")

        var rollback = Adapterd_V1_RollbackRequest()
        rollback.name = "hub"
        _ = try await adapters.rollback(rollback, RPCContext())
        let afterRollback = try await inference.infer(Self.infer(text), RPCContext())
        #expect(afterRollback.adapter == "climate")
        #expect(afterRollback.routerVersion == "v1")

        var history = Adapterd_V1_HistoryRequest()
        history.name = "hub"
        let actions = try await adapters.history(history, RPCContext()).events.map(\.action)
        #expect(actions.contains("activated") && actions.contains("rolled back"), "\(actions)")
    }

    @Test("A router pushed over the air (bundle, chunks, commit with activation) serves its decisions at once")
    func pushedRouterServes() async throws {
        let (offline, _, inference) = try await Self.worker()
        defer { withExtendedLifetime(offline) {} }
        let (directory, _) = try RoutingFixtures.fitRouter(Self.climateAndLightsSwapped, engine: offline.services.engine)
        let bundle = try AdapterBundle.encode(directory: directory)
        let pushes = PushHandlers(services: offline.services)
        var request = Adapterd_V1_PushAdapterRequest()
        request.name = "hub"
        request.version = "v2"
        var begin = Adapterd_V1_PushBegin()
        begin.size = Int64(bundle.count)
        begin.sha256 = AdapterDigest.sha256(of: bundle)
        begin.chunkSize = 4096
        request.begin = begin
        let started = try await pushes.push(request, RPCContext())
        for index in started.missing {
            var chunk = Adapterd_V1_PushChunk()
            chunk.index = index
            chunk.data = Data(bundle[(Int(index) * 4096)..<min(bundle.count, (Int(index) + 1) * 4096)])
            request.chunk = chunk
            _ = try await pushes.push(request, RPCContext())
        }
        var commit = Adapterd_V1_PushCommit()
        commit.activate = true
        request.commit = commit
        let committed = try await pushes.push(request, RPCContext())
        #expect(committed.adapter.kind == "router")
        #expect(committed.adapter.state == "active")
        let reply = try await inference.infer(Self.infer("it's freezing in here"), RPCContext())
        #expect(reply.adapter == "lights" && reply.routerVersion == "v2")
    }

    @Test("Below the route's minimum confidence the route's adapter serves, and the router's choice is still reported")
    func lowConfidenceFallsBack() async throws {
        let (offline, _, inference) = try await Self.worker(minConfidence: 1.0, fallback: "medical")
        defer { withExtendedLifetime(offline) {} }
        let reply = try await inference.infer(Self.infer("turn the hallway lamp off"), RPCContext())
        #expect(reply.adapter == "medical")
        #expect(reply.routedBy == "route")
        #expect(reply.routerChoice == "lights")
    }

    @Test("A request naming an adapter bypasses the router")
    func namedAdapterBypasses() async throws {
        let (offline, _, inference) = try await Self.worker()
        defer { withExtendedLifetime(offline) {} }
        let reply = try await inference.infer(Self.infer("it's freezing in here", adapter: "security"), RPCContext())
        #expect(reply.adapter == "security")
        #expect(reply.routedBy == "request")
        #expect(reply.router.isEmpty)
    }

    @Test("A session keeps the router's first decision for later requests")
    func sessionKeepsDecision() async throws {
        let (offline, _, inference) = try await Self.worker()
        defer { withExtendedLifetime(offline) {} }
        let first = try await inference.infer(Self.infer("it's freezing in here", session: "kitchen"), RPCContext())
        let second = try await inference.infer(Self.infer("dim the lights to half", session: "kitchen"), RPCContext())
        #expect(first.routedBy == "router")
        #expect(second.routedBy == "session")
        #expect(second.adapter == first.adapter)
    }

    @Test("A router cannot be inferred with, and a route cannot name an adapter as its router")
    func kindsAreChecked() async throws {
        let (offline, _, inference) = try await Self.worker()
        defer { withExtendedLifetime(offline) {} }
        let named = await offline.services.inferenceMethod.call(Array(#"{"text":"hi","adapter":"hub"}"#.utf8))
        #expect(named.status == .failedPrecondition)
        let route = await offline.services.controlMethods["SetRoute"]!.call(Array(#"{"name":"r2","router":"climate"}"#.utf8))
        #expect(route.status == .failedPrecondition)
        let missing = await offline.services.controlMethods["SetRoute"]!.call(Array(#"{"name":"r3","router":"nope"}"#.utf8))
        #expect(missing.status == .failedPrecondition)
        _ = inference
    }
}
