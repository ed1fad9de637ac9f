import AdapterdAPI
import AdapterdClient
import AdapterdCore
import AdapterdTestSupport
import AdapterFormats
import AdapterRuntime
import Foundation
import MQTTRPC
import Testing

/// Over-the-air pushes through a real mosquitto into a worker's real store.
@Suite("Adapter pushes over MQTT", .serialized)
struct PushTests {
    /// A key pair written the way `adapterctl keys generate` writes it.
    static func keyPair(in directory: String, name: String) throws -> (privateKey: String, publicKey: String) {
        let pair = SigningKeys.generate()
        try (pair.privateKey + "\n").write(toFile: directory + "/" + name, atomically: true, encoding: .utf8)
        try (pair.publicKey + "\n").write(toFile: directory + "/" + name + ".pub", atomically: true, encoding: .utf8)
        return (directory + "/" + name, directory + "/" + name + ".pub")
    }

    struct Setup {
        let broker: MosquittoProcess
        var configuration: WorkerConfiguration
        let worker: RunningWorker
        let client: AdapterdClient
        let keys: String
        let trusted: (privateKey: String, publicKey: String)

        var pusher: AdapterPusher { AdapterPusher(client: client, chunkSize: 16 << 10) }

        func stop() async throws {
            client.close()
            try await worker.stop()
        }

        /// Files left by pushes in progress.
        var pushFolders: [String] {
            (try? FileManager.default.contentsOfDirectory(atPath: configuration.dataDirectory + "/pushes")) ?? []
        }
    }

    /// A worker serving `alerts` v1 (the intent adapter) that requires pushes signed by one trusted key.
    static func setUp(requireSigned: Bool = true) async throws -> Setup {
        let broker = try Harness.broker()
        var configuration = Harness.configuration(broker: broker)
        configuration.preload = [("alerts", "v1", Harness.adapterDirectory("intent"))]
        let keys = Harness.temporaryDirectory()
        let trusted = try keyPair(in: keys, name: "fleet")
        configuration.trustedKeys = [trusted.publicKey]
        configuration.requireSigned = requireSigned
        let worker = try await RunningWorker(configuration)
        let client = try await AdapterdClient(brokerURL: broker.url, worker: configuration.workerID)
        return Setup(broker: broker, configuration: configuration, worker: worker, client: client, keys: keys, trusted: trusted)
    }

    static func push(_ request: Adapterd_V1_PushAdapterRequest, _ client: AdapterdClient) async throws -> Adapterd_V1_PushAdapterReply {
        try await client.control(.pushAdapter, request)
    }

    static func infer(_ client: AdapterdClient, version: String = "") async throws -> Adapterd_V1_InferReply {
        var request = Adapterd_V1_InferRequest()
        request.text = "vibration exceeds threshold on motor 7"
        request.adapter = "alerts"
        request.version = version
        return try await client.infer(request)
    }

    static func refusal(_ body: () async throws -> Void) async -> RPCError? {
        do {
            try await body()
            return nil
        } catch let error as RPCError {
            return error
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }

    @Test("a signed push is verified, staged like a loaded adapter, serves PyTorch's answer, and names its signer in the audit trail")
    func signedPushStagesAndServes() async throws {
        let setup = try await Self.setUp()
        let payload = try AdapterBundle.encode(directory: Harness.adapterDirectory("severity"))
        let manifest = setup.pusher.manifest(payload: payload, name: "alerts", version: "v2")
        #expect(manifest.sha256 == (try AdapterDigest.sha256(ofAdapterAt: Harness.adapterDirectory("severity"))), "the bundle's digest is the content address")
        let signature = try SigningKeys.sign(manifest, with: SigningKeys.privateKey(file: setup.trusted.privateKey))
        let outcome = try await setup.pusher.push(payload, manifest: manifest, signature: signature)
        #expect(outcome.reply.adapter.state == "staged")
        #expect(outcome.reply.adapter.sha256 == manifest.sha256)
        #expect(outcome.chunksSent == manifest.chunkCount && manifest.chunkCount > 10)
        #expect(try await Self.infer(setup.client).version == "v1", "a staged push does not serve until activated")
        let staged = try await Self.infer(setup.client, version: "v2")
        #expect(staged.label == "critical")

        var history = Adapterd_V1_HistoryRequest()
        history.name = "alerts"
        let trail = try await setup.client.control(.history, history).events
        let keyID = SigningKeys.keyID(try SigningKeys.publicKey(setup.trusted.publicKey))
        #expect(trail.last?.action == "loaded" && trail.last?.reason.contains("signed by key \(keyID)") == true)
        #expect(setup.pushFolders.isEmpty, "a committed push leaves no partial files")
        try await setup.stop()
    }

    @Test("an interrupted push resumes from the chunks already stored, across a worker restart, and commits with activation")
    func interruptedPushResumes() async throws {
        let setup = try await Self.setUp(requireSigned: false)
        let payload = try AdapterBundle.encode(directory: Harness.adapterDirectory("severity"))
        let manifest = setup.pusher.manifest(payload: payload, name: "alerts", version: "v2")
        var request = Adapterd_V1_PushAdapterRequest()
        request.name = "alerts"
        request.version = "v2"
        var begin = Adapterd_V1_PushBegin()
        begin.size = manifest.size
        begin.sha256 = manifest.sha256
        begin.chunkSize = Int32(manifest.chunkSize)
        request.begin = begin
        let started = try await Self.push(request, setup.client)
        #expect(started.missing.count == manifest.chunkCount)
        // Every other chunk, last to first, one of them twice: then the connection "drops".
        let sent = Array(stride(from: manifest.chunkCount - 1, through: 0, by: -2))
        for index in sent + [sent[0]] {
            var chunk = Adapterd_V1_PushChunk()
            chunk.index = Int32(index)
            let start = index * manifest.chunkSize
            chunk.data = Data(payload[start..<(start + manifest.length(ofChunk: index))])
            request.chunk = chunk
            #expect(RPCStatus(try await Self.push(request, setup.client).status) == .ok)
        }
        // A client that asks for ranges gets the same gaps as runs, and no list.
        begin.missingAsRanges = true
        request.begin = begin
        let asRanges = try await Self.push(request, setup.client)
        #expect(asRanges.missing.isEmpty)
        let gaps = asRanges.missingRanges.flatMap { Int($0.first)..<Int($0.first + $0.count) }
        #expect(gaps == Array(Set(0..<manifest.chunkCount).subtracting(sent)).sorted())

        var commit = Adapterd_V1_PushAdapterRequest()
        commit.name = "alerts"
        commit.version = "v2"
        commit.commit = Adapterd_V1_PushCommit()
        let early = try await Self.push(commit, setup.client)
        #expect(RPCStatus(early.status) == .failedPrecondition && early.error.contains("missing"))

        // The worker restarts; the push picks up where it stopped.
        setup.client.close()
        try await setup.worker.stop()
        var configuration = setup.configuration
        configuration.preload = []
        let worker = try await RunningWorker(configuration)
        let client = try await AdapterdClient(brokerURL: setup.broker.url, worker: configuration.workerID)
        let outcome = try await AdapterPusher(client: client, chunkSize: manifest.chunkSize).push(payload, manifest: manifest, activate: true, reason: "resumed push")
        #expect(outcome.chunksResumed == sent.count)
        #expect(outcome.chunksSent == manifest.chunkCount - sent.count)
        #expect(outcome.reply.adapter.state == "active")
        #expect(try await Self.infer(client).version == "v2")
        #expect(try await Self.infer(client).label == "critical")
        client.close()
        try await worker.stop()
    }

    @Test("missing chunks become runs: a fresh push is one range, scattered gaps one range each")
    func missingChunksAsRanges() {
        let whole = PushHandlers.ranges(of: Array(0..<500_000))
        #expect(whole.count == 1 && whole[0].first == 0 && whole[0].count == 500_000)
        let scattered = PushHandlers.ranges(of: [0, 1, 2, 5, 7, 8])
        #expect(scattered.map { [$0.first, $0.count] } == [[0, 3], [5, 1], [7, 2]])
        #expect(PushHandlers.ranges(of: []).isEmpty)
    }

    @Test("a push whose bytes do not hash to its sha256 is refused at commit and leaves nothing behind")
    func wrongDigestRefused() async throws {
        let setup = try await Self.setUp(requireSigned: false)
        var payload = try AdapterBundle.encode(directory: Harness.adapterDirectory("severity"))
        let manifest = setup.pusher.manifest(payload: payload, name: "alerts", version: "v2")
        payload[payload.count / 2] ^= 0xff
        let adaptersBefore = try FileManager.default.contentsOfDirectory(atPath: setup.configuration.dataDirectory + "/adapters")
        let error = await Self.refusal { _ = try await setup.pusher.push(payload, manifest: manifest) }
        #expect(error?.status == .dataLoss)
        #expect(error?.message.contains("hashes to") == true)
        #expect(setup.pushFolders.isEmpty, "the refused push's chunks are gone")
        #expect(try FileManager.default.contentsOfDirectory(atPath: setup.configuration.dataDirectory + "/adapters") == adaptersBefore)
        let listed = try await setup.client.control(.listAdapters, Adapterd_V1_ListAdaptersRequest())
        #expect(listed.adapters.map(\.version) == ["v1"])
        #expect(try await Self.infer(setup.client).version == "v1")
        try await setup.stop()
    }

    @Test("a signature by an untrusted key, or none where one is required, is refused before any chunk is stored")
    func signaturesChecked() async throws {
        let setup = try await Self.setUp()
        let payload = try AdapterBundle.encode(directory: Harness.adapterDirectory("severity"))
        let manifest = setup.pusher.manifest(payload: payload, name: "alerts", version: "v2")
        let stranger = try Self.keyPair(in: setup.keys, name: "stranger")
        let forged = try SigningKeys.sign(manifest, with: SigningKeys.privateKey(file: stranger.privateKey))
        let untrusted = await Self.refusal { _ = try await setup.pusher.push(payload, manifest: manifest, signature: forged) }
        #expect(untrusted?.status == .permissionDenied)
        let unsigned = await Self.refusal { _ = try await setup.pusher.push(payload, manifest: manifest) }
        #expect(unsigned?.status == .unauthenticated)
        // A trusted signature over another manifest (here: another version) does not carry over.
        var other = manifest
        other.version = "v9"
        let replayed = try SigningKeys.sign(other, with: SigningKeys.privateKey(file: setup.trusted.privateKey))
        let replay = await Self.refusal { _ = try await setup.pusher.push(payload, manifest: manifest, signature: replayed) }
        #expect(replay?.status == .permissionDenied)
        #expect(setup.pushFolders.isEmpty)
        try await setup.stop()
    }

    @Test("truncated and out-of-range chunks, oversized pushes and chunks without a begin are refused with their reason")
    func malformedChunksRefused() async throws {
        let setup = try await Self.setUp(requireSigned: false)
        var request = Adapterd_V1_PushAdapterRequest()
        request.name = "alerts"
        request.version = "v3"
        var chunk = Adapterd_V1_PushChunk()
        chunk.data = Data([1, 2, 3])
        request.chunk = chunk
        #expect(RPCStatus(try await Self.push(request, setup.client).status) == .notFound, "no begin yet")

        var begin = Adapterd_V1_PushBegin()
        begin.size = 10_000
        begin.sha256 = String(repeating: "ab", count: 32)
        begin.chunkSize = 4096
        request.begin = begin
        #expect(RPCStatus(try await Self.push(request, setup.client).status) == .ok)
        chunk.index = 0
        chunk.data = Data(repeating: 7, count: 4000)
        request.chunk = chunk
        let truncated = try await Self.push(request, setup.client)
        #expect(RPCStatus(truncated.status) == .invalidArgument && truncated.error.contains("4000 bytes, expected 4096"))
        chunk.index = 3
        chunk.data = Data(repeating: 7, count: 4096)
        request.chunk = chunk
        #expect(RPCStatus(try await Self.push(request, setup.client).status) == .outOfRange)

        begin.size = 1 << 40
        request.begin = begin
        let huge = try await Self.push(request, setup.client)
        #expect(RPCStatus(huge.status) == .resourceExhausted)
        begin.size = 10_000
        begin.sha256 = "not-a-digest"
        request.begin = begin
        #expect(RPCStatus(try await Self.push(request, setup.client).status) == .invalidArgument)
        request.abort = Adapterd_V1_PushAbort()
        #expect(RPCStatus(try await Self.push(request, setup.client).status) == .ok)
        #expect(setup.pushFolders.isEmpty)
        try await setup.stop()
    }

    @Test("an adapter for another base model is refused, by declared fingerprint or hub id, and the active version keeps serving")
    func anotherBaseModelRefused() async throws {
        let setup = try await Self.setUp(requireSigned: false)
        let payload = try AdapterBundle.encode(directory: Harness.adapterDirectory("severity"))
        let manifest = setup.pusher.manifest(payload: payload, name: "alerts", version: "v2", baseFingerprint: String(repeating: "0", count: 64))
        let wrongBase = await Self.refusal { _ = try await setup.pusher.push(payload, manifest: manifest) }
        #expect(wrongBase?.status == .failedPrecondition)
        #expect(wrongBase?.message.contains("built for the base model") == true)

        // The same weights, declaring another hub model in adapter_config.json.
        let copy = Harness.temporaryDirectory()
        for file in ["adapter_config.json", "adapter_model.safetensors"] {
            try FileManager.default.copyItem(atPath: Harness.adapterDirectory("severity") + "/" + file, toPath: copy + "/" + file)
        }
        let config = try String(contentsOfFile: copy + "/adapter_config.json", encoding: .utf8)
            .replacingOccurrences(of: "sentence-transformers/all-MiniLM-L6-v2", with: "sentence-transformers/paraphrase-MiniLM-L6-v2")
        try config.write(toFile: copy + "/adapter_config.json", atomically: true, encoding: .utf8)
        var load = Adapterd_V1_LoadAdapterRequest()
        load.name = "alerts"
        load.version = "v3"
        load.path = copy
        let refused = try await setup.client.control(.loadAdapter, load)
        #expect(RPCStatus(refused.status) == .failedPrecondition)
        #expect(refused.error.contains("paraphrase-MiniLM-L6-v2"))
        let sha = try AdapterDigest.sha256(ofAdapterAt: copy)
        #expect(!FileManager.default.fileExists(atPath: setup.configuration.dataDirectory + "/adapters/" + sha), "a refused adapter's files are removed")

        // With the correct fingerprint the same push is accepted.
        let fingerprint = try AdapterDigest.sha256(ofFile: Harness.modelDirectory + "/model.safetensors")
        let good = setup.pusher.manifest(payload: payload, name: "alerts", version: "v2", baseFingerprint: fingerprint)
        #expect(try await setup.pusher.push(payload, manifest: good).reply.adapter.state == "staged")
        #expect(try await Self.infer(setup.client).version == "v1")
        try await setup.stop()
    }

    /// A copy of `adapter` with its classifier weights negated in place: the same files but for the head's bytes
    /// (the safetensors header, every LoRA tensor, config and labels are unchanged).
    static func headChanged(_ adapter: String) throws -> String {
        try Harness.adapterCopy(adapter, editing: "classifier.weight") { values in values = values.map { -$0 } }
    }

    @Test("a version that differs only in its classifier head sends a few percent of the bundle; an unrelated adapter still goes whole")
    func deltaPushSendsOnlyChangedTensors() async throws {
        let setup = try await Self.setUp(requireSigned: false)
        let changed = try Self.headChanged("intent")
        defer { try? FileManager.default.removeItem(atPath: changed) }
        let payload = try AdapterBundle.encode(directory: changed)
        let manifest = setup.pusher.manifest(payload: payload, name: "alerts", version: "v2")
        let outcome = try await setup.pusher.push(payload, manifest: manifest, activate: true)
        #expect(outcome.delta && outcome.piecesSent == 1, "only the classifier weight travels (\(outcome.piecesSent) of \(outcome.piecesTotal) pieces)")
        let share = Double(outcome.bytesSent) / Double(payload.count)
        #expect(share <= 0.05, "sent \(outcome.bytesSent) of \(payload.count) bytes (\(share))")
        #expect(outcome.reply.adapter.sha256 == manifest.sha256, "the worker assembled the same bundle")
        // The new head serves: the logits of v2 are v1's negated... up to the bias.
        let v2 = try await Self.infer(setup.client)
        #expect(v2.version == "v2")
        let v1 = try await Self.infer(setup.client, version: "v1")
        #expect(v1.logits != v2.logits)

        // An unrelated adapter: nothing is held, everything travels, and it stages.
        let severity = try AdapterBundle.encode(directory: Harness.adapterDirectory("severity"))
        let full = try await setup.pusher.push(severity, manifest: setup.pusher.manifest(payload: severity, name: "alerts", version: "v3"))
        #expect(full.reply.adapter.state == "staged")
        #expect(full.bytesSent >= Int64(severity.count) * 9 / 10, "an unrelated adapter sends (nearly) everything: \(full.bytesSent) of \(severity.count)")
        // A client that does not ask for a delta sends the whole bundle, as before.
        let whole = try await setup.pusher.push(payload, manifest: setup.pusher.manifest(payload: payload, name: "alerts", version: "v4"), delta: false)
        #expect(!whole.delta && whole.bytesSent == Int64(payload.count))
        #expect(setup.pushFolders.isEmpty)
        try await setup.stop()
    }

    @Test("adapterctl adapters push --json reports the bytes sent: a head-only change sends a few percent")
    func cliReportsBytesSent() async throws {
        let binary = Harness.root + "/.build/debug/adapterctl"
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build adapterctl first (scripts/test does)")
        let setup = try await Self.setUp(requireSigned: false)
        let changed = try Self.headChanged("intent")
        defer { try? FileManager.default.removeItem(atPath: changed) }
        let output = Harness.temporaryDirectory() + "/push.json"
        let pid = try ChildProcess.spawn(binary, arguments: [
            "adapters", "push", changed, "--broker", setup.broker.url, "--worker", setup.configuration.workerID, "--name", "alerts",
            "--version", "v2", "--json",
        ], output: output)
        #expect(ChildProcess.wait(pid, timeout: .seconds(60)) == 0)
        let line = try String(contentsOfFile: output, encoding: .utf8)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not one JSON object: \(line)")
        let sent = try #require(object["bytesSent"] as? Int), total = try #require(object["bundleBytes"] as? Int)
        #expect(object["delta"] as? Bool == true && sent > 0 && Double(sent) / Double(total) <= 0.05, "\(line)")
        try await setup.stop()
    }
}
