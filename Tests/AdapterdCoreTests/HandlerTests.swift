import AdapterdAPI
import AdapterdClient
import AdapterdCore
import AdapterFormats
import AdapterRuntime
import AdapterdTestSupport
import Foundation
import Logging
import MQTTRPC
import Testing

/// The handlers and the RPC server called directly: no broker.
@Suite("Handlers")
struct HandlerTests {
    @Test("LoadAdapter stages the first version as active and publishes a loaded event")
    func loadStagesAndAnnounces() async throws {
        let offline = try OfflineServices()
        defer { withExtendedLifetime(offline) {} }
        var request = Adapterd_V1_LoadAdapterRequest()
        request.name = "intent"
        request.version = "v1"
        request.path = Harness.adapterDirectory("intent")
        let reply = try await AdapterHandlers(services: offline.services).load(request, RPCContext(actor: "tester"))
        #expect(reply.adapter.state == "active")
        #expect(reply.adapter.labels.count > 1)
        #expect(offline.events.map(\.event) == [.loaded])
        #expect(offline.events.first?.actor == "tester")
    }

    @Test("A missing adapter directory is NOT_FOUND and a damaged one FAILED_PRECONDITION with a refused event")
    func loadFailuresMapToStatuses() async throws {
        let offline = try OfflineServices()
        defer { withExtendedLifetime(offline) {} }
        let load = offline.services.controlMethods["LoadAdapter"]!
        let missing = await load.call(Array(#"{"name":"intent","version":"v1","path":"\#(Harness.root)/nonexistent/intent"}"#.utf8))
        #expect(missing.status == .notFound)

        let damaged = Harness.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: damaged) }
        try FileManager.default.copyItem(atPath: Harness.adapterDirectory("intent") + "/adapter_config.json", toPath: damaged + "/adapter_config.json")
        try Data(repeating: 0xFF, count: 64).write(to: URL(fileURLWithPath: damaged + "/adapter_model.safetensors"))
        let refused = await load.call(Array(#"{"name":"intent","version":"v2","path":"\#(damaged)"}"#.utf8))
        #expect(refused.status == .failedPrecondition)
        #expect(offline.events.map(\.event) == [.refused])
    }

    @Test("Each change to what is held or served publishes exactly one event, from the registry: loads, activation, rollback, and an unload per version")
    func oneEventPerChange() async throws {
        let offline = try OfflineServices()
        defer { withExtendedLifetime(offline) {} }
        let handlers = AdapterHandlers(services: offline.services)
        let context = RPCContext(actor: "tester")
        for (version, adapter) in [("v1", "intent"), ("v2", "severity")] {
            var load = Adapterd_V1_LoadAdapterRequest()
            (load.name, load.version, load.path) = ("alerts", version, Harness.adapterDirectory(adapter))
            _ = try await handlers.load(load, context)
        }
        var activate = Adapterd_V1_ActivateAdapterRequest()
        (activate.name, activate.version, activate.reason) = ("alerts", "v2", "newer")
        _ = try await handlers.activate(activate, context)
        var rollback = Adapterd_V1_RollbackRequest()
        (rollback.name, rollback.reason) = ("alerts", "worse")
        _ = try await handlers.rollback(rollback, context)
        var unload = Adapterd_V1_UnloadAdapterRequest()
        unload.name = "alerts"
        _ = try await handlers.unload(unload, context)
        let seen = offline.events.map { "\($0.event) \($0.version)" }
        #expect(seen == ["loaded v1", "loaded v2", "activated v2", "rolled back v1", "unloaded v1", "unloaded v2"])
        #expect(offline.events.allSatisfy { $0.actor == "tester" && $0.name == "alerts" })
        #expect(offline.events[3].reason == "worse")
    }

    @Test("LoadAdapter outside the adapter roots is PERMISSION_DENIED, the same whether the path exists or not")
    func loadConfinedToRoots() async throws {
        let offline = try OfflineServices { $0.adapterRoots = [Harness.root] }
        defer { withExtendedLifetime(offline) {} }
        let load = offline.services.controlMethods["LoadAdapter"]!
        let existing = await load.call(Array(#"{"name":"x","version":"v1","path":"/etc"}"#.utf8))
        let missing = await load.call(Array(#"{"name":"x","version":"v1","path":"/etc/nonexistent-dir"}"#.utf8))
        let escaping = await load.call(Array(#"{"name":"x","version":"v1","path":"\#(Harness.root)/../../etc"}"#.utf8))
        for reply in [existing, missing, escaping] { #expect(reply.status == .permissionDenied) }
        let text = { (reply: CachedReply) in String(decoding: reply.payload, as: UTF8.self).replacingOccurrences(of: "nonexistent-dir", with: "") }
        #expect(text(existing) == text(missing), "the reply must not reveal whether a path exists")
        // A symbolic link inside a root that leads out of it is refused too.
        let link = Harness.root + "/.build/adapterd-test-link-" + UUID().uuidString.prefix(6)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "/etc")
        defer { try? FileManager.default.removeItem(atPath: link) }
        #expect(await load.call(Array(#"{"name":"x","version":"v1","path":"\#(link)"}"#.utf8)).status == .permissionDenied)
        #expect(await load.call(Array(#"{"name":"intent","version":"v1","path":"\#(Harness.adapterDirectory("intent"))"}"#.utf8)).status == .ok)
    }

    @Test("An adapter file that is a symbolic link is refused and nothing is copied; errors never echo file bytes")
    func symlinkedFilesRefused() async throws {
        let offline = try OfflineServices()
        defer { withExtendedLifetime(offline) {} }
        let directory = Harness.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.copyItem(atPath: Harness.adapterDirectory("intent") + "/adapter_config.json", toPath: directory + "/adapter_config.json")
        try FileManager.default.createSymbolicLink(atPath: directory + "/adapter_model.safetensors", withDestinationPath: "/etc/hostname")
        let reply = await offline.services.controlMethods["LoadAdapter"]!.call(Array(#"{"name":"sneaky","version":"v1","path":"\#(directory)"}"#.utf8))
        #expect(reply.status == .failedPrecondition)
        #expect(String(decoding: reply.payload, as: UTF8.self).contains("not a regular file"))
        let stored = try FileManager.default.contentsOfDirectory(atPath: offline.dataDirectory + "/adapters").filter { !$0.hasPrefix(".") }
        #expect(stored.isEmpty)

        // A file whose first 8 bytes are text: the refusal names the problem, not the bytes as a number.
        let text = Harness.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: text) }
        try FileManager.default.copyItem(atPath: Harness.adapterDirectory("intent") + "/adapter_config.json", toPath: text + "/adapter_config.json")
        try Data("root:x:0:0:root:/root:/bin/bash\n".utf8).write(to: URL(fileURLWithPath: text + "/adapter_model.safetensors"))
        let refused = await offline.services.controlMethods["LoadAdapter"]!.call(Array(#"{"name":"sneaky","version":"v2","path":"\#(text)"}"#.utf8))
        let message = String(decoding: refused.payload, as: UTF8.self)
        #expect(refused.status == .failedPrecondition)
        #expect(!message.contains(String(UInt64(littleEndian: Data("root:x:0".utf8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }))), "\(message)")
    }

    @Test("Infer with no adapter named and no route gives the sentence embedding")
    func inferEmbedsWithoutAdapter() async throws {
        let offline = try OfflineServices()
        defer { withExtendedLifetime(offline) {} }
        var request = Adapterd_V1_InferRequest()
        request.text = "the pump is vibrating"
        let reply = try await InferenceHandlers(services: offline.services).infer(request, RPCContext())
        #expect(reply.embedding.count == 384)
        #expect(reply.adapter.isEmpty)
    }

    @Test("Infer naming an unknown adapter is NOT_FOUND, and 'version' without 'adapter' INVALID_ARGUMENT")
    func inferRefusals() async throws {
        let offline = try OfflineServices()
        defer { withExtendedLifetime(offline) {} }
        let infer = offline.services.inferenceMethod
        #expect(await infer.call(Array(#"{"text":"hi","adapter":"nope"}"#.utf8)).status == .notFound)
        #expect(await infer.call(Array(#"{"text":"hi","version":"v1"}"#.utf8)).status == .invalidArgument)
        #expect(await infer.call(Array(#"{"adapter":"nope"}"#.utf8)).status == .invalidArgument)
    }

    @Test("SetRoute with a malformed topic filter is INVALID_ARGUMENT")
    func routeFilterChecked() async throws {
        let offline = try OfflineServices()
        defer { withExtendedLifetime(offline) {} }
        let reply = await offline.services.controlMethods["SetRoute"]!.call(Array(#"{"name":"r","topic":"a/#/b","adapter":"intent"}"#.utf8))
        #expect(reply.status == .invalidArgument)
    }

    @Test("A route to an adapter that is not loaded is refused; a route whose adapter is unloaded later is skipped")
    func routeReferencesChecked() async throws {
        let offline = try OfflineServices()
        defer { withExtendedLifetime(offline) {} }
        let setRoute = offline.services.controlMethods["SetRoute"]!
        let refused = await setRoute.call(Array(#"{"name":"r","sensorType":"mic","adapter":"ghost"}"#.utf8))
        #expect(refused.status == .failedPrecondition)
        #expect(String(decoding: refused.payload, as: UTF8.self).contains("ghost"))

        _ = await offline.services.controlMethods["LoadAdapter"]!.call(Array(#"{"name":"intent","version":"v1","path":"\#(Harness.adapterDirectory("intent"))"}"#.utf8))
        #expect(await setRoute.call(Array(#"{"name":"r","sensorType":"mic","adapter":"intent"}"#.utf8)).status == .ok)
        _ = await offline.services.controlMethods["UnloadAdapter"]!.call(Array(#"{"name":"intent"}"#.utf8))
        var request = Adapterd_V1_InferRequest()
        request.text = "lock the door"
        let reply = try await InferenceHandlers(services: offline.services).infer(request, RPCContext(topic: "adapterd/v1/offline/infer/mic/1", sensorPath: ["mic", "1"]))
        #expect(reply.embedding.count == 384, "the stale route is skipped and the base model answers")
    }

    @Test("Routes beyond the limit are RESOURCE_EXHAUSTED; replacing one is not a new one; order follows priority")
    func routesBounded() async throws {
        let offline = try OfflineServices()
        defer { withExtendedLifetime(offline) {} }
        _ = await offline.services.controlMethods["LoadAdapter"]!.call(Array(#"{"name":"intent","version":"v1","path":"\#(Harness.adapterDirectory("intent"))"}"#.utf8))
        let routing = RoutingHandlers(services: offline.services)
        for index in 0..<AdapterRegistry.maxRoutes {
            var route = Adapterd_V1_SetRouteRequest()
            route.name = "r\(index)"
            route.sensorType = "s\(index)"
            route.adapter = "intent"
            route.priority = Int32(index % 7)
            _ = try await routing.setRoute(route, RPCContext())
        }
        let over = await offline.services.controlMethods["SetRoute"]!.call(Array(#"{"name":"one-more","adapter":"intent"}"#.utf8))
        #expect(over.status == .resourceExhausted)
        let replace = await offline.services.controlMethods["SetRoute"]!.call(Array(#"{"name":"r5","adapter":"intent","priority":100}"#.utf8))
        #expect(replace.status == .ok)
        let listed = try await routing.listRoutes(Adapterd_V1_ListRoutesRequest(), RPCContext()).routes
        #expect(listed.count == AdapterRegistry.maxRoutes)
        #expect(listed.first?.name == "r5")
        #expect(zip(listed, listed.dropFirst()).allSatisfy { $0.priority >= $1.priority })
    }

    @Test("The method table holds every documented control method once")
    func tableListsMethods() throws {
        let offline = try OfflineServices()
        defer { withExtendedLifetime(offline) {} }
        let names = offline.services.controlMethods.names
        #expect(Set(names) == [
            "LoadAdapter", "UnloadAdapter", "ListAdapters", "GetStatus", "ActivateAdapter", "Rollback", "History", "SetRoute",
            "DeleteRoute", "ListRoutes", "ClearSession", "SetRollout", "PinAdapter", "UnpinAdapter", "GetAdapter", "PushAdapter",
            "TrainAdapter", "CancelTraining", "Feedback", "FederatedRound",
        ])
        #expect(names.count == Set(names).count)
        #expect(offline.services.controlMethods.unknown("Nope").message.contains("GetStatus"))
    }
}

/// The RPC server's shared rules, with published messages recorded instead of sent.
@Suite("RPCServer")
struct RPCServerTests {
    final class Outbox: RPCTransport, @unchecked Sendable {
        private let lock = NSLock()
        private var messages: [(topic: String, payload: [UInt8], properties: MQTTProperties)] = []
        func send(_ topic: String, payload: [UInt8], properties: MQTTProperties) { lock.withLock { messages.append((topic, payload, properties)) } }
        var all: [(topic: String, payload: [UInt8], properties: MQTTProperties)] { lock.withLock { messages } }
    }

    static func server(_ offline: OfflineServices, outbox: Outbox) -> RPCServer {
        RPCServer(
            topics: Topics(worker: "offline"), workerID: "offline", inference: offline.services.inferenceMethod,
            control: offline.services.controlMethods, stats: offline.services.stats, duplicateWindow: .seconds(60),
            publishResults: false, logger: Logger(label: "test"), transport: outbox)
    }

    static func request(_ topic: String, _ body: String, correlation: String = "c1", expiry: UInt32? = nil) -> MQTTMessage {
        MQTTMessage(
            topic: topic, payload: Array(body.utf8),
            properties: MQTTProperties(responseTopic: "replies/t", correlationData: Array(correlation.utf8), contentType: "application/json", messageExpiry: expiry))
    }

    @Test("An unknown method is answered with INVALID_ARGUMENT listing the table, correlated")
    func unknownMethodListsTable() async throws {
        let offline = try OfflineServices()
        defer { withExtendedLifetime(offline) {} }
        let outbox = Outbox()
        await Self.server(offline, outbox: outbox).handle(Self.request("adapterd/v1/offline/control/Frobnicate", "{}"))
        let reply = try #require(outbox.all.first)
        #expect(reply.topic == "replies/t")
        #expect(reply.properties.correlationData == Array("c1".utf8))
        #expect(reply.properties.userProperty("status") == "INVALID_ARGUMENT")
        #expect(String(decoding: reply.payload, as: UTF8.self).contains("ListAdapters"))
    }

    @Test("A body over the size limit is RESOURCE_EXHAUSTED without being decoded or run")
    func oversizedBodyRefused() async throws {
        let offline = try OfflineServices()
        defer { withExtendedLifetime(offline) {} }
        let outbox = Outbox()
        let server = RPCServer(
            topics: Topics(worker: "offline"), workerID: "offline", inference: offline.services.inferenceMethod,
            control: offline.services.controlMethods, stats: offline.services.stats, duplicateWindow: .seconds(60),
            publishResults: false, maxRequestBytes: 1024, logger: Logger(label: "test"), transport: outbox)
        let text = String(repeating: "a", count: 4096)
        await server.handle(Self.request("adapterd/v1/offline/infer", #"{"text":"\#(text)"}"#))
        #expect(outbox.all.map { $0.properties.userProperty("status") } == ["RESOURCE_EXHAUSTED"])
        #expect(await offline.services.stats.executed == 0)
    }

    @Test("A retained request is never executed, so a restart does not run it again")
    func retainedIgnored() async throws {
        let offline = try OfflineServices()
        defer { withExtendedLifetime(offline) {} }
        let outbox = Outbox()
        var message = Self.request("adapterd/v1/offline/control/GetStatus", "{}")
        message.retain = true
        await Self.server(offline, outbox: outbox).handle(message)
        #expect(outbox.all.isEmpty)
        #expect(await offline.services.stats.executed == 0)
    }

    @Test("Replies go to client reply topics only: never to $ topics, wildcards, or adapterd's own request topics")
    func replyTopicsChecked() async throws {
        let offline = try OfflineServices()
        defer { withExtendedLifetime(offline) {} }
        let outbox = Outbox()
        let server = Self.server(offline, outbox: outbox)
        for (index, topic) in ["$SYS/broker/x", "adapterd/v1/other/control/UnloadAdapter", "adapterd/v1/pool/control/Rollback", "a/+/b", "adapterd/v1/clients/c1/replies", "app/replies"].enumerated() {
            await server.handle(MQTTMessage(
                topic: "adapterd/v1/offline/control/GetStatus", payload: Array("{}".utf8),
                properties: MQTTProperties(responseTopic: topic, correlationData: Array("r\(index)".utf8), contentType: "application/json")))
        }
        #expect(outbox.all.map(\.topic) == ["adapterd/v1/clients/c1/replies", "app/replies"])
    }

    @Test("A duplicate (same correlation) is answered from the first execution, which runs once")
    func duplicateRunsOnce() async throws {
        let offline = try OfflineServices()
        defer { withExtendedLifetime(offline) {} }
        let outbox = Outbox()
        let server = Self.server(offline, outbox: outbox)
        let body = #"{"name":"intent","version":"v1","path":"\#(Harness.adapterDirectory("intent"))"}"#
        await server.handle(Self.request("adapterd/v1/offline/control/LoadAdapter", body))
        await server.handle(Self.request("adapterd/v1/offline/control/LoadAdapter", body))
        #expect(outbox.all.count == 2)
        #expect(outbox.all.allSatisfy { $0.properties.userProperty("status") == "OK" })
        #expect(offline.events.count == 1)
        #expect(await offline.services.stats.executed == 1)
    }

    @Test("An expired request is DEADLINE_EXCEEDED without running; a body that does not decode is INVALID_ARGUMENT")
    func expiredAndMalformed() async throws {
        let offline = try OfflineServices()
        defer { withExtendedLifetime(offline) {} }
        let outbox = Outbox()
        let server = Self.server(offline, outbox: outbox)
        var expired = Self.request("adapterd/v1/offline/infer", #"{"text":"hi"}"#, correlation: "e", expiry: 1)
        expired.receivedAt = .now - .seconds(2)
        await server.handle(expired)
        await server.handle(Self.request("adapterd/v1/offline/control/GetStatus", "{not json", correlation: "m"))
        let statuses = outbox.all.map { $0.properties.userProperty("status") }
        #expect(statuses == ["DEADLINE_EXCEEDED", "INVALID_ARGUMENT"])
        #expect(await offline.services.stats.executed == 0)
    }
}

@Suite("ReplyCache")
struct ReplyCacheTests {
    static func reply(_ size: Int) -> CachedReply { CachedReply(payload: [UInt8](repeating: 1, count: size), status: .ok) }

    @Test("A duplicate within its window gets the first reply without running again")
    func duplicateServedOnce() async {
        let cache = ReplyCache()
        let first = await cache.reply(for: "k", window: .seconds(60)) { Self.reply(3) }
        let second = await cache.reply(for: "k", window: .seconds(60)) { Self.reply(5) }
        #expect(!first.duplicate && second.duplicate)
        #expect(second.reply.payload.count == 3)
    }

    @Test("Memory stays within its byte and entry bounds however many requests pass")
    func bounded() async {
        let cache = ReplyCache(capacity: 100, maxBytes: 64 << 10)
        for index in 0..<5_000 {
            _ = await cache.reply(for: "k\(index)", window: .seconds(600)) { Self.reply(4096) }
        }
        let size = await cache.size
        #expect(size.entries <= 100)
        #expect(size.bytes <= 64 << 10)
        // The newest are kept.
        #expect(await cache.reply(for: "k4999", window: .seconds(600)) { Self.reply(1) }.duplicate)
    }
}

@Suite("ControlLane")
struct ControlLaneTests {
    final class Gauge: @unchecked Sendable {
        private let lock = NSLock()
        private var current = 0
        private(set) var peak = 0
        private(set) var order: [Int] = []
        func enter(_ index: Int) { lock.withLock { current += 1; peak = max(peak, current); order.append(index) } }
        func leave() { lock.withLock { current -= 1 } }
    }

    @Test("Control requests run one at a time, every one of them, however many arrive together")
    func oneAtATime() async {
        let lane = ControlLane()
        let gauge = Gauge()
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<200 {
                group.addTask {
                    await lane.run {
                        gauge.enter(index)
                        // Give every other task the chance to barge in.
                        for _ in 0..<5 { await Task.yield() }
                        gauge.leave()
                    }
                }
            }
        }
        #expect(gauge.peak == 1)
        #expect(gauge.order.count == 200)
        #expect(await lane.queued == 0)
    }
}

@Suite("Version limit")
struct VersionLimitTests {
    @Test("past the version limit a load is refused with RESOURCE_EXHAUSTED before any work, and fits again after an unload")
    func versionsBounded() async throws {
        let offline = try OfflineServices()
        defer { withExtendedLifetime(offline) {} }
        let directory = Harness.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let registry = AdapterRegistry(
            engine: offline.services.engine, store: try AdapterStore(dataDirectory: directory), baseFingerprint: "f",
            cacheBytes: 64 << 20, maxVersions: 2)
        let path = Harness.adapterDirectory("intent")
        _ = try await registry.load(name: "intent", version: "v1", path: path, actor: "test")
        _ = try await registry.load(name: "intent", version: "v2", path: path, actor: "test")
        do {
            _ = try await registry.load(name: "intent", version: "v3", path: path, actor: "test")
            Issue.record("a third version was registered past a limit of 2")
        } catch {
            #expect(error == .limit(what: "adapter versions", limit: 2))
            #expect(RPCError(mapping: error).status == .resourceExhausted)
        }
        // Loading a version already registered is not a new one.
        _ = try await registry.load(name: "intent", version: "v2", path: path, actor: "test")
        try await registry.unload(name: "intent", version: "v2", actor: "test")
        _ = try await registry.load(name: "intent", version: "v3", path: path, actor: "test")
        #expect(await registry.count == 2)
    }

    @Test("past the version limit a push is refused at its begin with RESOURCE_EXHAUSTED, before any chunk is stored")
    func pushRefusedAtBegin() async throws {
        let offline = try OfflineServices { $0.maxVersions = 1 }
        defer { withExtendedLifetime(offline) {} }
        _ = try await offline.services.registry.load(name: "intent", version: "v1", path: Harness.adapterDirectory("intent"), actor: "test")
        let payload = try AdapterBundle.encode(directory: Harness.adapterDirectory("severity"))
        var request = Adapterd_V1_PushAdapterRequest()
        request.name = "intent"
        request.version = "v2"
        var begin = Adapterd_V1_PushBegin()
        begin.size = Int64(payload.count)
        begin.sha256 = AdapterDigest.sha256(of: payload)
        begin.chunkSize = 16 << 10
        request.begin = begin
        do {
            _ = try await PushHandlers(services: offline.services).push(request, RPCContext())
            Issue.record("a push past the version limit was begun")
        } catch {
            #expect(RPCError(mapping: error).status == .resourceExhausted, "\(error)")
        }
        let pushes = (try? FileManager.default.contentsOfDirectory(atPath: offline.dataDirectory + "/pushes")) ?? []
        #expect(pushes.isEmpty, "nothing was stored for the refused push")
    }
}

@Suite("Session pins")
struct SessionPinTests {
    @Test("Pins stay within their bound however many sessions arrive, newest kept, in memory and after a restart")
    func pinsBounded() async throws {
        let offline = try OfflineServices()
        defer { withExtendedLifetime(offline) {} }
        let directory = Harness.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let engine = offline.services.engine
        let registry = AdapterRegistry(engine: engine, store: try AdapterStore(dataDirectory: directory), baseFingerprint: "f", cacheBytes: 64 << 20, maxPins: 100)
        _ = try await registry.load(name: "intent", version: "v1", path: Harness.adapterDirectory("intent"), actor: "test")
        for index in 0..<1_000 {
            _ = try await registry.resolveReporting(name: "intent", session: "s\(index)", stickyKey: "", ttl: .seconds(3600 + index))
        }
        await registry.flushPins()
        #expect(await registry.pinCount <= 100)
        #expect(try await registry.resolveReporting(name: "intent", session: "s999", stickyKey: "", ttl: .seconds(60)).resolution == .pinned)

        let restarted = AdapterRegistry(engine: engine, store: try AdapterStore(dataDirectory: directory), baseFingerprint: "f", cacheBytes: 64 << 20, maxPins: 100)
        _ = try await restarted.restore()
        #expect(await restarted.pinCount <= 100)
    }
}

/// Weighted blends named by an Infer request, with the handlers called directly.
@Suite("Blends over Infer")
struct BlendInferTests {
    static let blends = Harness.root + "/Tests/AdapterEngineTests/Fixtures/blends"

    struct Reference: Decodable {
        struct Part: Decodable { let adapter: String; let weight: Float }
        struct Case: Decodable { let text: String; let logits: [Float] }
        struct Blend: Decodable { let name: String; let parts: [Part]; let cases: [Case] }
        let blends: [Blend]
    }

    /// Services holding the blend fixtures' adapters (and the zoo's DoRA one), loaded as LoadAdapter loads them.
    static func services() async throws -> OfflineServices {
        let offline = try OfflineServices()
        let handlers = AdapterHandlers(services: offline.services)
        let zoo = Harness.root + "/Tests/AdapterEngineTests/Fixtures/encoder-zoo/adapters/all-MiniLM-L6-v2/dora-intent"
        for (name, path) in [("lora-qv", blends + "/lora-qv"), ("rslora-dense", blends + "/rslora-dense"), ("loha-qv", blends + "/loha-qv"), ("dora", zoo)] {
            var load = Adapterd_V1_LoadAdapterRequest()
            (load.name, load.version, load.path) = (name, "v1", path)
            _ = try await handlers.load(load, RPCContext())
        }
        return offline
    }

    static func request(_ text: String, _ parts: [(String, Float)]) -> Adapterd_V1_InferRequest {
        var request = Adapterd_V1_InferRequest()
        request.text = text
        request.adapters = parts.map { name, weight in
            var part = Adapterd_V1_WeightedAdapter()
            (part.name, part.weight) = (name, weight)
            return part
        }
        return request
    }

    @Test("an Infer naming weighted adapters gets PyTorch's blended logits, the parts' versions, and shares one built blend")
    func blendMatchesReference() async throws {
        let offline = try await Self.services()
        defer { withExtendedLifetime(offline) {} }
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: Self.blends + "/blends.json")))
        let infer = InferenceHandlers(services: offline.services)
        for blend in reference.blends {
            for expected in blend.cases {
                let reply = try await infer.infer(Self.request(expected.text, blend.parts.map { ($0.adapter, $0.weight) }), RPCContext())
                #expect(Harness.maxAbsDiff(reply.logits, expected.logits) < 1e-4, "\(blend.name): \(expected.text)")
                #expect(reply.adapter == "blend" && reply.blend.map(\.name) == blend.parts.map(\.adapter) && reply.blend.allSatisfy { $0.version == "v1" })
            }
        }
        #expect(await offline.services.resolver.blends.count == reference.blends.count, "one built blend per distinct blend")
    }

    @Test("a blend with a DoRA part is FAILED_PRECONDITION with the reason; one part, a repeated name or adapter beside adapters is INVALID_ARGUMENT")
    func refusals() async throws {
        let offline = try await Self.services()
        defer { withExtendedLifetime(offline) {} }
        let infer = InferenceHandlers(services: offline.services).method
        func status(_ request: Adapterd_V1_InferRequest) async throws -> (RPCStatus, String) {
            let reply = await infer.call(try request.jsonUTF8Bytes())
            let decoded = try Adapterd_V1_InferReply(jsonUTF8Bytes: reply.payload)
            return (reply.status, decoded.error)
        }
        let dora = try await status(Self.request("hi", [("lora-qv", 0.5), ("dora", 0.5)]))
        #expect(dora.0 == .failedPrecondition && dora.1.contains("DoRA"), "\(dora)")
        #expect(try await status(Self.request("hi", [("lora-qv", 1)])).0 == .invalidArgument)
        #expect(try await status(Self.request("hi", [("lora-qv", 0.5), ("lora-qv", 0.5)])).0 == .invalidArgument)
        var both = Self.request("hi", [("lora-qv", 0.5), ("loha-qv", 0.5)])
        both.adapter = "lora-qv"
        #expect(try await status(both).0 == .invalidArgument)
        #expect(try await status(Self.request("hi", [("lora-qv", 0.5), ("missing", 0.5)])).0 == .notFound)
        // Every part's hold on the cache was returned.
        #expect(await offline.services.registry.cache.heldCount == 0)
    }
}

/// Every PEFT method the engine serves, through the worker's lifecycle: LoadAdapter, Infer, a second version, activation.
@Suite("PEFT methods in the worker")
struct PEFTMethodWorkerTests {
    struct Reference: Decodable {
        struct Case: Decodable { let text: String; let logits: [Float]; let label: String }
        struct Adapter: Decodable { let cases: [Case] }
        let adapters: [String: Adapter]
    }

    @Test("DoRA, IA³, AdaLoRA, LoHa and LoKr adapters load, serve PyTorch+PEFT's logits, and switch versions like LoRA")
    func everyMethodServes() async throws {
        let offline = try OfflineServices()
        defer { withExtendedLifetime(offline) {} }
        let zoo = Harness.root + "/Tests/AdapterEngineTests/Fixtures/encoder-zoo"
        let reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: URL(fileURLWithPath: zoo + "/minilm-methods.json")))
        let handlers = AdapterHandlers(services: offline.services)
        let infer = InferenceHandlers(services: offline.services)
        for name in ["dora-intent", "ia3-severity", "adalora-room", "loha-mood", "lokr-device"] {
            var load = Adapterd_V1_LoadAdapterRequest()
            (load.name, load.version, load.path) = (name, "v1", zoo + "/adapters/all-MiniLM-L6-v2/" + name)
            let loaded = try await handlers.load(load, RPCContext())
            #expect(loaded.adapter.state == "active" && loaded.adapter.bytes > 0, "\(name): \(loaded.adapter)")
            for expected in try #require(reference.adapters[name]).cases {
                var request = Adapterd_V1_InferRequest()
                (request.text, request.adapter) = (expected.text, name)
                let reply = try await infer.infer(request, RPCContext())
                #expect(Harness.maxAbsDiff(reply.logits, expected.logits) < 1e-4 && reply.label == expected.label, "\(name): \(expected.text)")
            }
        }
        // A LoRA version beside a LoHa one under the same name: activation switches between methods.
        var second = Adapterd_V1_LoadAdapterRequest()
        (second.name, second.version, second.path) = ("loha-mood", "v2", Harness.adapterDirectory("intent"))
        _ = try await handlers.load(second, RPCContext())
        var activate = Adapterd_V1_ActivateAdapterRequest()
        (activate.name, activate.version) = ("loha-mood", "v2")
        _ = try await handlers.activate(activate, RPCContext())
        var request = Adapterd_V1_InferRequest()
        (request.text, request.adapter) = ("lock the front door", "loha-mood")
        #expect(try await infer.infer(request, RPCContext()).version == "v2")
    }
}
