import AdapterdAPI
import AdapterdClient
import AdapterdCore
import AdapterdTestSupport
import FleetControl
import Foundation
import MQTTRPC
import Testing

/// Fleet rollouts against a real mosquitto and six workers serving `alerts` v1 (the intent adapter), with traffic.
@Suite("Fleet rollouts", .serialized)
struct FleetRolloutTests {
    /// Six workers on one broker, labelled by site, publishing metrics every second.
    struct Fleet {
        let broker: MosquittoProcess
        let workers: [RunningWorker]
        let ids: [String]

        init(count: Int = 6) async throws {
            broker = try Harness.broker()
            var workers: [RunningWorker] = []
            var ids: [String] = []
            let prefix = "fleet" + UUID().uuidString.prefix(4).lowercased()
            for index in 0..<count {
                var configuration = Harness.configuration(broker: broker, worker: "\(prefix)-\(index)")
                configuration.preload = [("alerts", "v1", Harness.adapterDirectory("intent"))]
                configuration.metricsInterval = .seconds(1)
                configuration.labels = ["site": index < count / 2 ? "north" : "south"]
                workers.append(try await RunningWorker(configuration))
                ids.append(configuration.workerID)
            }
            self.workers = workers
            self.ids = ids
        }

        func stop() async {
            for worker in workers { try? await worker.stop() }
        }
    }

    /// Sends Infer requests for `alerts` round robin to `workers` until cancelled; counts replies that were not OK.
    final class Traffic: @unchecked Sendable {
        private let lock = NSLock()
        private var sent = 0
        private var failed: [String] = []
        var counts: (sent: Int, failed: [String]) { lock.withLock { (sent, failed) } }

        /// Runs `body` while traffic goes to `workers`; the traffic stops when `body` returns. With `mixes`, worker
        /// `i` gets only the texts of `mixes[i % mixes.count]` (each site its own mix).
        func during<T: Sendable>(broker: String, workers: [String], mixes: [[String]]? = nil, _ body: () async throws -> T) async throws -> T {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await self.run(broker: broker, workers: workers, mixes: mixes) }
                defer { group.cancelAll() }
                return try await body()
            }
        }

        func run(broker: String, workers: [String], mixes: [[String]]? = nil) async throws {
            let clients = try await withThrowingTaskGroup(of: AdapterdClient.self) { group in
                for worker in workers { group.addTask { try await AdapterdClient(brokerURL: broker, worker: worker) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            defer { clients.forEach { $0.close() } }
            let texts = ["turn on the kitchen lights", "lock the front door", "set the thermostat to 21", "is the garage open", "lights off in the hall"]
            var index = 0
            while !Task.isCancelled {
                var request = Adapterd_V1_InferRequest()
                let client = clients[index % clients.count]
                let mix = mixes.map { $0[(clients.firstIndex { $0 === client } ?? 0) % $0.count] } ?? texts
                request.text = mix[(index / clients.count) % mix.count]
                request.adapter = "alerts"
                request.session = "s\(index)"
                do {
                    _ = try await client.infer(request, timeout: .seconds(5))
                    lock.withLock { sent += 1 }
                } catch {
                    if Task.isCancelled { break }
                    lock.withLock { sent += 1; failed.append("\(client.topics.worker): \(error)") }
                }
                // Sequential: each request waits for its reply, which paces the traffic.
                index += 1
            }
        }
    }

    static func policy() -> RolloutPolicy {
        var policy = RolloutPolicy()
        policy.canary = 1
        policy.growth = 2
        policy.minRequests = 8
        policy.soakSeconds = 1.5
        policy.waveTimeoutSeconds = 30
        policy.workerTimeoutSeconds = 10
        return policy
    }

    /// A copy of the intent adapter whose classifier bias favours its last label by `shift`: most inputs get that
    /// label, a drift no error rate shows.
    static func collapsedHead(shift: Float = 12) throws -> String {
        try Harness.adapterCopy("intent", editing: "classifier.bias") { values in values[values.count - 1] += shift }
    }

    static func history(_ broker: String, worker: String) async throws -> [Adapterd_V1_HistoryEvent] {
        let client = try await AdapterdClient(brokerURL: broker, worker: worker)
        defer { client.close() }
        var request = Adapterd_V1_HistoryRequest()
        request.name = "alerts"
        return try await client.control(.history, request).events
    }

    @Test("a good version rolls out in waves of 1, 2 and 3 to all six workers with no failed request; discovery sees labels and versions")
    func goodVersionCompletes() async throws {
        let fleet = try await Fleet()
        let state = Harness.temporaryDirectory() + "/rollout.sqlite"
        let traffic = Traffic()
        let report = try await traffic.during(broker: fleet.broker.url, workers: fleet.ids) {
            let controller = FleetController(brokerURL: fleet.broker.url, store: try FleetStore(path: state))
            // The same adapter files as a new version: every piece is already on the workers.
            let report = try await controller.start(
                name: "alerts", version: "v2", adapterDirectory: Harness.adapterDirectory("intent"), selector: FleetSelector(""), policy: Self.policy())
            return report
        }
        #expect(report.state == "completed", "\(report.reason)")
        #expect(report.workers.count == 6 && report.workers.values.allSatisfy { $0.active == "v2" && $0.outcome.hasPrefix("verified") }, "\(report.workers)")
        #expect(report.bytesSent == 0, "the workers held every piece of an identical adapter")
        let waves = Dictionary(grouping: try FleetStore(path: state).workers(), by: \.wave).mapValues(\.count)
        #expect(waves == [0: 1, 1: 2, 2: 3])
        let counts = traffic.counts
        #expect(counts.sent > 30 && counts.failed.isEmpty, "\(counts.failed.count) of \(counts.sent) requests failed: \(counts.failed.prefix(3))")

        // Discovery: the retained statuses carry labels and the versions each worker holds.
        let watcher = try await FleetWatcher(options: FleetController(brokerURL: fleet.broker.url, store: try FleetStore(path: ":memory:")).watcherOptions)
        defer { watcher.close() }
        let north = try await watcher.discover(FleetSelector("site=north"))
        #expect(north.count == 3 && north.allSatisfy { $0.adapters?.first { $0.name == "alerts" }?.active == "v2" })
        await fleet.stop()
    }

    @Test("a version whose predictions drift is stopped in the first wave; every worker that got it is back on v1, with the reason in its History and the report")
    func driftingVersionRollsBack() async throws {
        let fleet = try await Fleet()
        let flipped = try Self.collapsedHead()
        defer { try? FileManager.default.removeItem(atPath: flipped) }
        let state = Harness.temporaryDirectory() + "/rollout.sqlite"
        let traffic = Traffic()
        let report = try await traffic.during(broker: fleet.broker.url, workers: fleet.ids) {
            let controller = FleetController(brokerURL: fleet.broker.url, store: try FleetStore(path: state))
            let report = try await controller.start(
                name: "alerts", version: "v2", adapterDirectory: flipped, selector: FleetSelector(""), policy: Self.policy())
            return report
        }
        #expect(report.state == "aborted")
        #expect(report.reason.contains("wave 1") && report.reason.contains("drift"), "\(report.reason)")
        #expect(report.bytesSent > 0 && report.bytesSent < 20_000, "only the classifier head travelled: \(report.bytesSent) bytes")
        let touched = report.workers.filter { $0.value.outcome.hasPrefix("rolled back") }
        #expect(touched.count == 1, "only the canary got it: \(report.workers)")
        #expect(report.workers.values.allSatisfy { $0.active == "v1" })
        for worker in touched.keys {
            let trail = try await Self.history(fleet.broker.url, worker: worker)
            #expect(trail.last?.version == "v1" && trail.last?.reason.contains("drift") == true, "\(trail.last.map { "\($0.action) \($0.version): \($0.reason)" } ?? "none")")
        }
        await fleet.stop()
    }

    @Test("a controller killed with SIGKILL mid-rollout resumes and finishes; a second controller cannot take a live rollout")
    func killedControllerResumes() async throws {
        let binary = Harness.root + "/.build/debug/adapterctl"
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build adapterctl first (scripts/test does)")
        let fleet = try await Fleet()
        let directory = Harness.temporaryDirectory()
        let state = directory + "/rollout.sqlite"
        let traffic = Traffic()
        let report = try await traffic.during(broker: fleet.broker.url, workers: fleet.ids) {
            let pid = try ChildProcess.spawn(binary, arguments: [
                "fleet", "rollout", "--broker", fleet.broker.url, "--name", "alerts", "--version", "v2", "--adapter", Harness.adapterDirectory("intent"),
                "--state", state, "--min-requests", "8", "--soak", "1.5", "--wave-timeout", "30", "--json",
            ], output: directory + "/controller.log")
            // Killed once the first wave has passed.
            let passed = await Harness.eventually(timeout: .seconds(60)) {
                (try? FleetStore(path: state).workers().contains { $0.state == .verified }) ?? false
            }
            #expect(passed, "the first wave did not pass within 60 s: \((try? String(contentsOfFile: directory + "/controller.log", encoding: .utf8)) ?? "")")
            // While it runs, another controller is refused.
            do {
                _ = try await FleetController(brokerURL: fleet.broker.url, store: try FleetStore(path: state)).resume()
                Issue.record("a second controller ran a live rollout")
            } catch let error as FleetError {
                guard case .claimed = error else { throw error }
            }
            kill(pid, SIGKILL)
            _ = ChildProcess.wait(pid, timeout: .seconds(10))
            let midway = try FleetController.report(store: try FleetStore(path: state))
            #expect(midway.state == "running")
            // The claim of a dead process does not hold.
            let report = try await FleetController(brokerURL: fleet.broker.url, store: try FleetStore(path: state)).resume()
            return report
        }
        #expect(report.state == "completed", "\(report.reason)")
        #expect(report.workers.values.allSatisfy { $0.active == "v2" }, "\(report.workers)")
        #expect(traffic.counts.failed.isEmpty)
        await fleet.stop()
    }

    @Test("fleet status and fleet abort from another shell: the running controller rolls back and ends with one JSON line and exit code 1")
    func abortFromAnotherShell() async throws {
        let binary = Harness.root + "/.build/debug/adapterctl"
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build adapterctl first (scripts/test does)")
        let fleet = try await Fleet(count: 2)
        let directory = Harness.temporaryDirectory()
        let state = directory + "/rollout.sqlite"
        let traffic = Traffic()
        let (code, output) = try await traffic.during(broker: fleet.broker.url, workers: fleet.ids) {
            // A soak long enough to abort during it.
            let pid = try ChildProcess.spawn(binary, arguments: [
                "fleet", "rollout", "--broker", fleet.broker.url, "--name", "alerts", "--version", "v2", "--adapter", Harness.adapterDirectory("intent"),
                "--state", state, "--soak", "120", "--wave-timeout", "300", "--json",
            ], output: directory + "/controller.log")
            defer { ChildProcess.terminate(pid, within: .seconds(1)) }
            let activated = await Harness.eventually(timeout: .seconds(60)) {
                (try? FleetStore(path: state).workers().contains { $0.state == .activated }) ?? false
            }
            #expect(activated, "the canary was not activated within 60 s")
            let status = try ChildProcess.spawn(binary, arguments: ["fleet", "status", "--state", state, "--json"], output: directory + "/status.log")
            #expect(ChildProcess.wait(status, timeout: .seconds(30)) == 0)
            let abort = try ChildProcess.spawn(binary, arguments: ["fleet", "abort", "--state", state, "--reason", "operator said no"], output: directory + "/abort.log")
            #expect(ChildProcess.wait(abort, timeout: .seconds(30)) == 0)
            let code = ChildProcess.wait(pid, timeout: .seconds(60))
            return (code, (try? String(contentsOfFile: directory + "/controller.log", encoding: .utf8)) ?? "")
        }
        #expect(code == 1, "\(output)")
        let statusLine = try String(contentsOfFile: directory + "/status.log", encoding: .utf8)
        #expect(statusLine.contains("\"state\":\"running\""), "\(statusLine)")
        let last = try #require(output.split(separator: "\n").last, "no output")
        let report = try JSONDecoder().decode(FleetController.Report.self, from: Data(last.utf8))
        #expect(report.state == "aborted" && report.reason == "operator said no")
        #expect(report.workers.values.allSatisfy { $0.active == "v1" }, "\(report.workers)")
        await fleet.stop()
    }

    @Test("a version the workers refuse (tensors that do not fit its config) stops the rollout at the canary, which keeps serving v1")
    func refusedVersionAborts() async throws {
        let fleet = try await Fleet(count: 3)
        let broken = Harness.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: broken) }
        for file in ["adapter_model.safetensors", "labels.json"] {
            try FileManager.default.copyItem(atPath: Harness.adapterDirectory("intent") + "/" + file, toPath: broken + "/" + file)
        }
        let config = try String(contentsOfFile: Harness.adapterDirectory("intent") + "/adapter_config.json", encoding: .utf8)
        try config.replacingOccurrences(of: "\"r\": 8", with: "\"r\": 16").write(toFile: broken + "/adapter_config.json", atomically: true, encoding: .utf8)
        let controller = FleetController(brokerURL: fleet.broker.url, store: try FleetStore(path: Harness.temporaryDirectory() + "/rollout.sqlite"))
        let report = try await controller.start(name: "alerts", version: "v2", adapterDirectory: broken, selector: FleetSelector(""), policy: Self.policy())
        #expect(report.state == "aborted" && report.reason.contains("refused"), "\(report.reason)")
        #expect(report.workers.values.filter { $0.outcome.hasPrefix("failed") }.count == 1)
        #expect(report.workers.values.allSatisfy { $0.active == "v1" })
        await fleet.stop()
    }

    /// Rolls `alerts` v2 out over `fleet` (unreachable workers retried once, then skipped) and, once the plan exists,
    /// stops the last worker of wave `victimWave`; traffic goes to the others. Returns the rollout's report.
    static func rolloutLosingWorker(_ fleet: Fleet, victimWave: Int) async throws -> FleetController.Report {
        let state = Harness.temporaryDirectory() + "/rollout.sqlite"
        let policy = {
            var policy = Self.policy()
            policy.workerTimeoutSeconds = 2
            policy.retries = 1
            return policy
        }()
        let traffic = Traffic()
        return try await withThrowingTaskGroup(of: FleetController.Report?.self) { group in
            let controller = FleetController(brokerURL: fleet.broker.url, store: try FleetStore(path: state))
            group.addTask {
                try await controller.start(
                    name: "alerts", version: "v2", adapterDirectory: Harness.adapterDirectory("intent"), selector: FleetSelector(""), policy: policy)
            }
            let planned = await Harness.eventually(timeout: .seconds(30)) { ((try? FleetStore(path: state).workers()) ?? []).count == fleet.ids.count }
            try #require(planned, "no plan within 30 s")
            let rows = try FleetStore(path: state).workers()
            let victim = try #require(rows.last { $0.wave == victimWave }?.worker)
            try await fleet.workers[fleet.ids.firstIndex(of: victim)!].stop()
            group.addTask { try await traffic.run(broker: fleet.broker.url, workers: fleet.ids.filter { $0 != victim }); return nil }
            var report: FleetController.Report?
            while let next = try await group.next() {
                if let next {
                    report = next
                    group.cancelAll()
                }
            }
            return try #require(report)
        }
    }

    @Test("a worker that dies mid-rollout is retried, then skipped and reported (offline: skip); the rest completes")
    func deadWorkerIsSkipped() async throws {
        let fleet = try await Fleet(count: 3)
        // One worker of the last wave goes away once the plan exists.
        let report = try await Self.rolloutLosingWorker(fleet, victimWave: 1)
        #expect(report.state == "completed", "\(report.reason)")
        let skipped = report.workers.filter { $0.value.outcome.hasPrefix("skipped") }
        #expect(skipped.count == 1 && skipped.first?.value.active == "v1", "\(report.workers)")
        #expect(report.workers.values.filter { $0.active == "v2" }.count == 2)
        for worker in fleet.workers { try? await worker.stop() }
    }

    @Test("forged retained statuses (another worker's id under a fake topic, the pool's id, ghosts) are not acted on: only verified workers are planned, and a selection of ghosts finds no worker")
    func forgedStatusesAreIgnored() async throws {
        let fleet = try await Fleet(count: 2)
        let (north, south) = (fleet.ids[0], fleet.ids[1])
        let forger = try await RawClient(broker: fleet.broker)
        defer { forger.close() }
        func forge(topic: String, worker: String, site: String) throws {
            let status = WorkerStatus(state: "online", worker: worker, version: "0.1.0", model: "x", startedAt: "2026-01-01T00:00:00Z", labels: ["site": site])
            try forger.client.publish("adapterd/v1/\(topic)/status", payload: Array(try JSONEncoder().encode(status)), qos: 1, retain: true)
        }
        try forge(topic: "zz-fake", worker: south, site: "north")
        try forge(topic: "pool", worker: "pool", site: "north")
        try forge(topic: "ghost", worker: "ghost", site: "north")
        try forge(topic: "ghost2", worker: "+", site: "north")
        let state = Harness.temporaryDirectory() + "/rollout.sqlite"
        let traffic = Traffic()
        var policy = Self.policy()
        policy.workerTimeoutSeconds = 2
        let report = try await traffic.during(broker: fleet.broker.url, workers: [north]) {
            try await FleetController(brokerURL: fleet.broker.url, store: try FleetStore(path: state)).start(
                name: "alerts", version: "v2", adapterDirectory: Harness.adapterDirectory("intent"), selector: FleetSelector("site=north"), policy: policy)
        }
        #expect(report.state == "completed", "\(report.reason)")
        #expect(Set(report.workers.keys) == [north], "planned \(report.workers.keys.sorted()), only \(north) is a north worker")
        let southHistory = try await Self.history(fleet.broker.url, worker: south)
        #expect(!southHistory.contains { $0.version == "v2" }, "the south worker was touched: \(southHistory.map(\.action))")

        // A ghost that does answer nobody: a rollout selecting only it finds no verified worker.
        await #expect(throws: FleetError.self) {
            try await FleetController(brokerURL: fleet.broker.url, store: try FleetStore(path: Harness.temporaryDirectory() + "/ghost.sqlite")).start(
                name: "alerts", version: "v3", adapterDirectory: Harness.adapterDirectory("intent"), selector: FleetSelector("id=ghost"), policy: policy)
        }
        await fleet.stop()
    }

    @Test("a wave whose every worker was skipped (gone after the plan) never counts as passed: the rollout aborts and rolls back")
    func waveOfSkippedWorkersAborts() async throws {
        let fleet = try await Fleet(count: 2)
        // The second wave's only worker goes away once the plan exists.
        let report = try await Self.rolloutLosingWorker(fleet, victimWave: 1)
        #expect(report.state == "aborted" && report.reason.contains("reached none"), "\(report.state): \(report.reason)")
        #expect(report.workers.values.allSatisfy { $0.active == "v1" }, "\(report.workers)")
        for worker in fleet.workers { try? await worker.stop() }
    }
}
