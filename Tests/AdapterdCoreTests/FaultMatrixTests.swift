import AdapterdAPI
import AdapterdClient
import AdapterdCore
import AdapterdTestSupport
import AdapterFormats
import AdapterRuntime
import Foundation
import MQTTRPC
import Testing

/// kill -9 at each step between two durable writes of a load, a push, an activation and a rollout (`CrashPoint`):
/// the adapterd process dies there, and a restart from what it left on disk is consistent and serving.
@Suite("Fault matrix: kill -9 at each step", .serialized)
struct FaultMatrixTests {
    typealias Daemon = AdapterdDaemon

    static func infer(_ client: AdapterdClient, session: String = "", timeout: Duration = .seconds(10)) async throws -> Adapterd_V1_InferReply {
        var request = Adapterd_V1_InferRequest()
        request.text = "vibration exceeds threshold on motor 7"
        request.adapter = "alerts"
        request.session = session
        return try await client.infer(request, timeout: timeout)
    }

    static func load(_ client: AdapterdClient, version: String, adapter: String) async throws -> Adapterd_V1_LoadAdapterReply {
        var load = Adapterd_V1_LoadAdapterRequest()
        load.name = "alerts"
        load.version = version
        load.path = Harness.adapterDirectory(adapter)
        return try await client.control(.loadAdapter, load, timeout: .seconds(3))
    }

    /// Every content directory in the store belongs to a registered version, and nothing half-copied is left.
    static func expectNoStrayFiles(_ daemon: Daemon, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let referenced = Set(try daemon.store().versions().filter { $0.state != .failed }.map(\.sha256))
        let present = Set(try FileManager.default.contentsOfDirectory(atPath: daemon.directory + "/adapters"))
        #expect(present == referenced, "files in the store \(present.sorted()) vs registered \(referenced.sorted())", sourceLocation: sourceLocation)
    }

    /// The history of `name` agrees with the registry: exactly one version active, and the last activation names it.
    static func expectConsistent(_ daemon: Daemon, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let store = try daemon.store()
        let active = try store.versions(name: "alerts").filter { $0.state == .active }
        #expect(active.count == 1, "one active version of alerts, not \(active.map(\.version))", sourceLocation: sourceLocation)
        let lastSwitch = try store.history(name: "alerts").last { [.activated, .rolledBack].contains($0.action) && $0.actor != "guard" }
        #expect(lastSwitch?.version == active.first?.version, "the audit trail ends on the active version", sourceLocation: sourceLocation)
    }

    // MARK: Load

    @Test("killed after a load copied its files, before registering them: the restart removes the files and the load can be sent again")
    func killAfterImport() async throws {
        var daemon = try Daemon()
        let (pid, client) = try await daemon.start(crashAt: .loadImported)
        _ = try? await Self.load(client, version: "v1", adapter: "intent")
        client.close()
        #expect(daemon.killedItself(pid))
        #expect(try daemon.store().versions().isEmpty)
        #expect(try !FileManager.default.contentsOfDirectory(atPath: daemon.directory + "/adapters").isEmpty, "the copy was left behind")

        let (again, second) = try await daemon.start()
        defer { ChildProcess.terminate(again, within: .seconds(5)) }
        try Self.expectNoStrayFiles(daemon)
        #expect(RPCStatus(try await Self.load(second, version: "v1", adapter: "intent").status) == .ok)
        #expect(try await Self.infer(second).version == "v1")
        try Self.expectConsistent(daemon)
        second.close()
    }

    @Test("killed after a name's first version was registered: the restart serves it as the active version")
    func killAfterRegister() async throws {
        var daemon = try Daemon()
        let (pid, client) = try await daemon.start(crashAt: .loadRegistered)
        _ = try? await Self.load(client, version: "v1", adapter: "intent")
        client.close()
        #expect(daemon.killedItself(pid))
        try Self.expectConsistent(daemon)

        let (again, second) = try await daemon.start()
        defer { ChildProcess.terminate(again, within: .seconds(5)) }
        #expect(try await Self.infer(second).version == "v1")
        try Self.expectNoStrayFiles(daemon)
        second.close()
    }

    // MARK: Push

    /// Pushes the severity adapter as alerts v2 with activation; returns the outcome, or nil when the worker died.
    static func push(_ client: AdapterdClient, timeout: Duration = .seconds(10)) async throws -> AdapterPusher.Outcome? {
        let payload = try AdapterBundle.encode(directory: Harness.adapterDirectory("severity"))
        let pusher = AdapterPusher(client: client, chunkSize: 16 << 10, timeout: timeout, retries: 0)
        let manifest = pusher.manifest(payload: payload, name: "alerts", version: "v2")
        return try? await pusher.push(payload, manifest: manifest, activate: true, reason: "fault matrix")
    }

    @Test("killed at each step of a push: the push sent again resumes from what was stored and ends active and serving",
          arguments: [CrashPoint.pushChunkStored, .pushVerified, .pushStaged])
    func killDuringPush(_ point: CrashPoint) async throws {
        var daemon = try Daemon(adapters: ["alerts@v1=" + Harness.adapterDirectory("intent")])
        let (pid, client) = try await daemon.start(crashAt: point)
        #expect(try await Self.push(client, timeout: .seconds(2)) == nil, "the push outlived its worker")
        client.close()
        #expect(daemon.killedItself(pid))
        let v2 = try daemon.store().versions(name: "alerts").first { $0.version == "v2" }
        #expect((v2 != nil) == (point == .pushStaged), "v2 is registered only once the push staged it")
        try Self.expectConsistent(daemon)

        let (again, second) = try await daemon.start()
        defer { ChildProcess.terminate(again, within: .seconds(5)) }
        #expect(try await Self.infer(second).version == "v1", "the version before the push serves after the restart")
        let outcome = try #require(try await Self.push(second))
        if point != .pushChunkStored {
            #expect(outcome.chunksSent == 0, "a complete push is not sent again")
        } else {
            #expect(outcome.chunksResumed >= 1, "chunks stored before the kill are kept")
        }
        #expect(outcome.reply.adapter.state == "active")
        #expect(try await Self.infer(second).version == "v2")
        try Self.expectConsistent(daemon)
        try Self.expectNoStrayFiles(daemon)
        #expect(try FileManager.default.contentsOfDirectory(atPath: daemon.directory + "/pushes").isEmpty, "a finished push leaves no files")
        second.close()
    }

    // MARK: Activation and rollout

    @Test("killed after an activation was written: the restart serves the activated version")
    func killAfterActivation() async throws {
        var daemon = try Daemon(adapters: ["alerts@v1=" + Harness.adapterDirectory("intent"), "alerts@v2=" + Harness.adapterDirectory("severity")])
        let (pid, client) = try await daemon.start(crashAt: .activationWritten)
        var activate = Adapterd_V1_ActivateAdapterRequest()
        activate.name = "alerts"
        activate.version = "v2"
        _ = try? await client.control(.activateAdapter, activate, timeout: .seconds(3))
        client.close()
        #expect(daemon.killedItself(pid))
        try Self.expectConsistent(daemon)

        let (again, second) = try await daemon.start()
        defer { ChildProcess.terminate(again, within: .seconds(5)) }
        #expect(try await Self.infer(second).version == "v2")
        second.close()
    }

    @Test("killed after a traffic split was written: the restart applies it")
    func killAfterRolloutSaved() async throws {
        var daemon = try Daemon(adapters: ["alerts@v1=" + Harness.adapterDirectory("intent"), "alerts@v2=" + Harness.adapterDirectory("severity")])
        let (pid, client) = try await daemon.start(crashAt: .rolloutSaved)
        var split = Adapterd_V1_SetRolloutRequest()
        split.name = "alerts"
        split.splits = ["v1": 50, "v2": 50]
        _ = try? await client.control(.setRollout, split, timeout: .seconds(3))
        client.close()
        #expect(daemon.killedItself(pid))

        let (again, second) = try await daemon.start()
        defer { ChildProcess.terminate(again, within: .seconds(5)) }
        var served: Set<String> = []
        for index in 0..<40 where served.count < 2 {
            served.insert(try await Self.infer(second, session: "s\(index)").version)
        }
        #expect(served == ["v1", "v2"], "new sessions are split between both versions")
        try Self.expectConsistent(daemon)
        second.close()
    }

    @Test("killed after the rollout guard's rollback was written: the restart serves only the stable version, canary sessions included")
    func killAfterRollback() async throws {
        // A policy no canary can meet: any canary latency counts as too slow once both have 5 requests.
        var daemon = try Daemon(
            adapters: ["alerts@v1=" + Harness.adapterDirectory("intent"), "alerts@v2=" + Harness.adapterDirectory("severity")],
            config: "rolloutGuard: {minRequests: 5, maxErrorRateIncrease: 0.05, maxLatencyRatio: 0}\n")
        let (pid, client) = try await daemon.start(crashAt: .rollbackWritten)
        var split = Adapterd_V1_SetRolloutRequest()
        split.name = "alerts"
        split.splits = ["v1": 50, "v2": 50]
        _ = try await client.control(.setRollout, split)
        var canarySessions: [String] = []
        for index in 0..<60 {
            guard let reply = try? await Self.infer(client, session: "s\(index)", timeout: .seconds(2)) else { break }
            if reply.version == "v2" { canarySessions.append("s\(index)") }
        }
        client.close()
        #expect(daemon.killedItself(pid))
        #expect(!canarySessions.isEmpty)
        let store = try daemon.store()
        #expect(try store.rollouts().isEmpty)
        #expect(try store.sessions().allSatisfy { $0.version == "v1" }, "no session stays pinned to the rolled-back canary")
        #expect(try store.history(name: "alerts").last?.action == .rolledBack)

        let (again, second) = try await daemon.start()
        defer { ChildProcess.terminate(again, within: .seconds(5)) }
        for session in canarySessions + ["new"] {
            #expect(try await Self.infer(second, session: session).version == "v1")
        }
        try Self.expectConsistent(daemon)
        second.close()
    }

    // MARK: Training

    static func train(_ client: AdapterdClient, epochs: Int32) async throws -> Adapterd_V1_TrainAdapterReply {
        var request = Adapterd_V1_TrainAdapterRequest()
        request.name = "home"
        request.version = "v1"
        request.examples = [("turn on the lights", "lights"), ("dim the lamp", "lights"), ("smoke in the hall", "alarm"), ("the alarm rings", "alarm")].map {
            var example = Adapterd_V1_LabelledText()
            example.text = $0.0
            example.label = $0.1
            return example
        }
        request.epochs = epochs
        request.batchSize = 2
        return try await client.control(.trainAdapter, request, timeout: .seconds(5))
    }

    @Test("killed mid-training, or after a training wrote its files but before staging them: the restart stages nothing and removes the files",
          arguments: [CrashPoint?.none, .trainingWritten])
    func killDuringTraining(_ point: CrashPoint?) async throws {
        var daemon = try Daemon()
        let (pid, client) = try await daemon.start(crashAt: point)
        let raw = try await RawClient(broker: daemon.broker)
        let events = Topics(worker: daemon.worker).events
        try await raw.client.subscribe(events, qos: 1, acknowledgedWithin: .seconds(5))
        #expect(RPCStatus(try await Self.train(client, epochs: point == nil ? 1000 : 2).status) == .ok)
        client.close()
        if point == nil {
            // Training is under way once it reports progress; then the power goes.
            let progressed = await raw.waitUntil(timeout: .seconds(30)) { messages in
                messages.contains { $0.topic == events && String(decoding: $0.payload, as: UTF8.self).contains("\"totalSteps\"") }
            }
            #expect(progressed, "no training progress within 30 s")
            kill(pid, SIGKILL)
        }
        #expect(daemon.killedItself(pid))
        raw.close()
        if point == .trainingWritten {
            #expect(FileManager.default.fileExists(atPath: daemon.directory + "/training/home@v1/adapter_model.safetensors"), "the training wrote its files")
        }
        #expect(try daemon.store().versions(name: "home").isEmpty, "nothing of the training was staged")

        let (again, second) = try await daemon.start()
        defer { ChildProcess.terminate(again, within: .seconds(5)) }
        #expect(!FileManager.default.fileExists(atPath: daemon.directory + "/training"), "the training's files are removed at start")
        // The same training runs to the end after the restart.
        let watcher = try await RawClient(broker: daemon.broker)
        defer { watcher.close() }
        try await watcher.client.subscribe(events, qos: 1, acknowledgedWithin: .seconds(5))
        #expect(RPCStatus(try await Self.train(second, epochs: 2).status) == .ok)
        let staged = await watcher.waitUntil(timeout: .seconds(60)) { messages in
            messages.contains { $0.topic == events && String(decoding: $0.payload, as: UTF8.self).contains("\"event\":\"trained\"") }
        }
        #expect(staged, "the training after the restart staged v1")
        second.close()
    }
}
