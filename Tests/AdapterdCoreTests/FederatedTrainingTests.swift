import AdapterdAPI
import AdapterdClient
import AdapterdCore
import AdapterdTestSupport
import AdapterTraining
import FederatedLearning
import FleetControl
import Foundation
import MQTTRPC
import Testing

/// Federated training over a real mosquitto: six workers, each holding its own non-IID slice of the six-domain
/// routing examples as stored Feedback, and a controller that runs rounds over them.
@Suite("Federated training", .serialized)
struct FederatedTrainingTests {
    /// Six workers on one broker serving `rooms` v0, each with its Dirichlet(0.5) slice of the routing fit examples
    /// stored as feedback for `rooms`.
    struct Fleet {
        let broker: MosquittoProcess
        let workers: [RunningWorker]
        let ids: [String]
        let slices: [[TrainingExample]]
        static let labels = ["machine", "chat", "medical", "climate", "security", "lights"]

        init(count: Int = 6) async throws {
            broker = try Harness.broker()
            let examples = RoutingFixtures.fit.map { TrainingExample(text: $0.text, label: $0.adapter) }
            slices = DirichletPartition(alpha: 0.5, seed: 0).split(examples, clients: count)
            var workers: [RunningWorker] = [], ids: [String] = []
            let prefix = "fed" + UUID().uuidString.prefix(4).lowercased()
            for index in 0..<count {
                var configuration = Harness.configuration(broker: broker, worker: "\(prefix)-\(index)")
                // The name already serves a version: the run's result is staged beside it, not activated.
                configuration.preload = [("rooms", "v0", Harness.adapterDirectory("intent"))]
                workers.append(try await RunningWorker(configuration))
                ids.append(configuration.workerID)
            }
            self.workers = workers
            self.ids = ids
            for (id, slice) in zip(ids, slices) {
                let client = try await AdapterdClient(brokerURL: broker.url, worker: id)
                defer { client.close() }
                for example in slice {
                    var request = Adapterd_V1_FeedbackRequest()
                    (request.name, request.text, request.label) = ("rooms", example.text, example.label)
                    let reply = try await client.control(.feedback, request)
                    try #require(RPCStatus(reply.status) == .ok, "\(reply.error)")
                }
            }
        }

        func stop() async {
            for worker in workers { try? await worker.stop() }
        }
    }

    static func settings(version: String, rounds: Int, out: String) -> FederatedController.Settings {
        var settings = FederatedController.Settings(name: "rooms", version: version, outDirectory: out)
        settings.rounds = rounds
        settings.minExamples = 1
        settings.roundTimeoutSeconds = 300
        settings.workerTimeoutSeconds = 5
        return settings
    }

    static func plan() -> RoundPlan {
        var plan = RoundPlan(labels: Fleet.labels)
        plan.localEpochs = 2
        return plan
    }

    @Test("two rounds over six workers: every worker trains, the adapter is written as PEFT files and staged (not active) on all six, no example text crosses the broker, and a next run continues it")
    func roundsCompleteWithoutTexts() async throws {
        let fleet = try await Fleet()
        let recorder = try await RawClient(broker: fleet.broker)
        try await recorder.client.subscribe("#", qos: 0, acknowledgedWithin: .seconds(5))
        let out = Harness.temporaryDirectory() + "/rooms-v1"
        let controller = FederatedController(brokerURL: fleet.broker.url, store: try FederationStore(path: Harness.temporaryDirectory() + "/fed.sqlite"))
        let report = try await controller.start(Self.settings(version: "v1", rounds: 2, out: out), plan: Self.plan())
        #expect(report.state == "completed", "\(report.reason)")
        #expect(report.rounds.map(\.round) == [1, 2])
        for round in report.rounds {
            #expect(round.clients == fleet.slices.filter { !$0.isEmpty }.count, "round \(round.round) skipped \(round.skipped)")
            #expect(round.examples > 0 && round.bytesUp > 0)
        }
        #expect(report.rounds[0].bytesDown == 0, "the first round starts from the seeded initialisation on every worker")
        #expect(report.rounds[1].bytesDown == report.rounds[1].bytesUp, "with svd the global adapter and an update hold the same tensors (A, B, head)")
        #expect(report.staged == fleet.ids.sorted())
        for file in ["adapter_config.json", "adapter_model.safetensors", "labels.json"] {
            #expect(FileManager.default.fileExists(atPath: out + "/" + file), "\(file) not written")
        }
        // Staged, not active, on every worker.
        for id in fleet.ids {
            let client = try await AdapterdClient(brokerURL: fleet.broker.url, worker: id)
            defer { client.close() }
            var request = Adapterd_V1_GetAdapterRequest()
            request.name = "rooms"
            let reply = try await client.control(.getAdapter, request)
            #expect(RPCStatus(reply.status) == .ok && reply.versions.contains { $0.version == "v1" } && reply.active == "v0", "\(id): \(reply)")
        }
        // The broker carried tensors, counts and accuracies only.
        let payloads = recorder.received.map { Data($0.payload) }
        #expect(payloads.count > 20, "the recorder saw \(payloads.count) messages")
        let texts = fleet.slices.flatMap { $0 }.map(\.text)
        let leaked = texts.filter { text in payloads.contains { $0.range(of: Data(text.utf8)) != nil } }
        #expect(leaked.isEmpty, "example texts on the broker: \(leaked.prefix(3))")
        recorder.close()

        // A second run continues v1: every worker starts from its copy; the labels, rank and targets are v1's.
        var continued = RoundPlan(labels: [])
        continued.baseVersion = "v1"
        continued.localEpochs = 1
        let next = try await FederatedController(brokerURL: fleet.broker.url, store: try FederationStore(path: Harness.temporaryDirectory() + "/next.sqlite"))
            .start(Self.settings(version: "v2", rounds: 1, out: Harness.temporaryDirectory() + "/rooms-v2"), plan: continued)
        #expect(next.state == "completed" && next.rounds.first?.clients == report.rounds[0].clients, "\(next.reason) \(next.rounds)")
        #expect(next.staged == fleet.ids.sorted())
        await fleet.stop()
    }

    @Test("a worker stopped while it trains is skipped and the round completes with the other five")
    func stoppedWorkerIsSkipped() async throws {
        let fleet = try await Fleet()
        let state = Harness.temporaryDirectory() + "/fed.sqlite"
        let controller = FederatedController(brokerURL: fleet.broker.url, store: try FederationStore(path: state))
        var settings = Self.settings(version: "v1", rounds: 1, out: Harness.temporaryDirectory() + "/out")
        settings.workerTimeoutSeconds = 2
        var plan = Self.plan()
        plan.localEpochs = 20
        let victim = try #require(fleet.ids.indices.max { fleet.slices[$0].count < fleet.slices[$1].count })
        let (runSettings, runPlan) = (settings, plan)
        let report = try await withThrowingTaskGroup(of: FederatedController.Report?.self) { group in
            group.addTask { try await controller.start(runSettings, plan: runPlan) }
            group.addTask {
                // Stopped once it reports its training under way.
                let client = try await AdapterdClient(brokerURL: fleet.broker.url, worker: fleet.ids[victim])
                defer { client.close() }
                let training = await Harness.eventually(timeout: .seconds(60), interval: .milliseconds(100)) {
                    guard let run = try? FederationStore(path: state).run()?.run else { return false }
                    var request = Adapterd_V1_FederatedRoundRequest()
                    (request.name, request.run, request.round) = ("rooms", run, 1)
                    request.collect = Adapterd_V1_FederatedCollect()
                    return (try? await client.control(.federatedRound, request, timeout: .seconds(2)))?.state == "training"
                }
                #expect(training, "the victim never started training")
                try await fleet.workers[victim].stop()
                return nil
            }
            var report: FederatedController.Report?
            for try await result in group { if let result { report = result } }
            return try #require(report)
        }
        #expect(report.state == "completed", "\(report.reason)")
        let round = try #require(report.rounds.first)
        #expect(round.skipped.keys.contains(fleet.ids[victim]), "\(round.skipped)")
        #expect(round.clients == fleet.slices.filter { !$0.isEmpty }.count - 1)
        #expect(!report.staged.contains(fleet.ids[victim]))
        await fleet.stop()
    }

    @Test("a controller killed between rounds resumes at the next round; a second controller cannot take a live run; DP reports Opacus' ε")
    func killedControllerResumes() async throws {
        let binary = Harness.root + "/.build/debug/adapterctl"
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build adapterctl first (scripts/test does)")
        let fleet = try await Fleet()
        let directory = Harness.temporaryDirectory()
        let state = directory + "/fed.sqlite"
        let arguments = [
            "fleet", "federate", "--broker", fleet.broker.url, "--name", "rooms", "--version", "v2", "--labels", Fleet.labels.joined(separator: ","),
            "--rounds", "3", "--local-epochs", "2", "--min-examples", "1", "--method", "ffa", "--dp-clip", "1", "--dp-noise", "1", "--state", state,
            "--out", directory + "/out", "--json",
        ]
        let pid = try ChildProcess.spawn(binary, arguments: arguments, output: directory + "/controller.log")
        let oneRound = await Harness.eventually(timeout: .seconds(120), interval: .milliseconds(50)) {
            ((try? FederationStore(path: state).run()?.roundsDone) ?? 0) >= 1
        }
        #expect(oneRound, "no round completed within 120 s: \((try? String(contentsOfFile: directory + "/controller.log", encoding: .utf8)) ?? "")")
        do {
            var settings = Self.settings(version: "v2", rounds: 3, out: directory + "/out")
            settings.privacy = DifferentialPrivacy(clip: 1, noiseMultiplier: 1)
            var plan = Self.plan()
            plan.method = .frozenA
            _ = try await FederatedController(brokerURL: fleet.broker.url, store: try FederationStore(path: state)).start(settings, plan: plan)
            Issue.record("a second controller ran a live federated run")
        } catch let error as FleetError {
            guard case .claimed = error else { throw error }
        }
        kill(pid, SIGKILL)
        _ = ChildProcess.wait(pid, timeout: .seconds(10))
        let midway = try #require(try FederationStore(path: state).run())
        #expect(midway.state == "running" && midway.roundsDone < 3)
        // The same command again resumes it.
        let resumed = try ChildProcess.spawn(binary, arguments: arguments, output: directory + "/resumed.log")
        let status = ChildProcess.wait(resumed, timeout: .seconds(240))
        let output = (try? String(contentsOfFile: directory + "/resumed.log", encoding: .utf8)) ?? ""
        #expect(status == 0, "\(output)")
        #expect(output.contains("resuming the run of rooms v2 after round \(midway.roundsDone)"), "\(output)")
        let last = try #require(output.split(separator: "\n").last { $0.hasPrefix("{") })
        let report = try JSONDecoder().decode(FederatedController.Report.self, from: Data(last.utf8))
        #expect(report.state == "completed" && report.rounds.map(\.round) == [1, 2, 3], "\(report)")
        #expect(abs((report.epsilon ?? 0) - 9.009959) < 1e-3 && report.delta == 1e-5, "ε \(report.epsilon ?? -1)")
        await fleet.stop()
    }
}
