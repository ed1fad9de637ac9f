import AdapterdAPI
import AdapterdClient
import AdapterEngine
import AdapterFormats
import AdapterTraining
import FederatedLearning
import Foundation
import MQTTRPC

/// Runs federated training over a fleet: each round it offers the global adapter to the workers `selector` takes
/// that hold enough examples for the name, picks up to `clientsPerRound` of those that accept, sends each the global
/// adapter in chunks, has it train on its own stored examples, collects the trained tensors in chunks, and combines
/// them (by default the exact example-weighted mean of the LoRA products, re-factored to the rank; under differential
/// privacy clipped and noised). Workers that fail or miss the round's deadline are skipped for that round. Every
/// completed round is in the `FederationStore`, so a killed controller resumes at the round it was in. At the end the
/// global adapter is written as PEFT files and pushed to the workers as a new version, not activated.
public struct FederatedController: Sendable {
    /// What a run was started with (kept in the store, so a resumed run goes on alike).
    public struct Settings: Sendable, Codable, Equatable {
        public var name: String
        public var version: String
        public var selector = ""
        public var rounds = 10
        /// Workers trained per round (0: every worker that accepts).
        public var clientsPerRound = 0
        public var minExamples = 10
        public var roundTimeoutSeconds = 600.0
        public var workerTimeoutSeconds = 10.0
        public var chunkSize = 64 << 10
        public var privacy: DifferentialPrivacy?
        /// Where the final PEFT files go.
        public var outDirectory: String
        /// ed25519 key the staging pushes are signed with ("" for none).
        public var signingKey = ""
        /// Learned from the workers when the run starts: the base model's fingerprint and name.
        public var baseFingerprint = ""
        public var baseModel = ""

        /// A run of `rounds` rounds for (name, version), written to `outDirectory`.
        public init(name: String, version: String, outDirectory: String) {
            self.name = name
            self.version = version
            self.outDirectory = outDirectory
        }

        /// Refuses settings that cannot work, before any worker is asked.
        public func validate() throws(FederatedError) {
            guard (1...1000).contains(rounds) else { throw .invalidOptions("--rounds must be 1–1000, got \(rounds)") }
            guard clientsPerRound >= 0 else { throw .invalidOptions("--clients-per-round must be 0 (all) or more, got \(clientsPerRound)") }
            guard minExamples >= 1 else { throw .invalidOptions("--min-examples must be at least 1, got \(minExamples)") }
            guard roundTimeoutSeconds > 0, workerTimeoutSeconds > 0 else { throw .invalidOptions("timeouts must be positive") }
            guard (1024...(512 << 10)).contains(chunkSize) else { throw .invalidOptions("the chunk size must be 1 KiB to 512 KiB") }
            try privacy?.validate()
        }
    }

    /// One round's figures.
    public struct RoundReport: Sendable, Codable, Equatable {
        public var round: Int
        /// Workers whose update went into the average, and the examples they trained on.
        public var clients: Int
        public var examples: Int
        /// Bytes of tensors received from and sent to the workers this round.
        public var bytesUp: Int64
        public var bytesDown: Int64
        /// Mean of the workers' held-out local accuracies (those that held examples out).
        public var meanLocalAccuracy: Double?
        /// Workers skipped this round, with why.
        public var skipped: [String: String]
    }

    /// How a run ended (or stands).
    public struct Report: Sendable, Codable, Equatable {
        /// "completed", "aborted" or "running".
        public var state: String
        public var reason: String
        public var name: String
        public var version: String
        public var rounds: [RoundReport]
        /// Where the global adapter was written, and the workers it was staged on.
        public var out: String
        public var staged: [String]
        /// The (ε, δ) of the whole run under differential privacy.
        public var epsilon: Double?
        public var delta: Double?
    }

    /// The broker and how to log in.
    public let broker: FleetBroker
    /// The run's state file.
    public let store: FederationStore
    /// Progress lines, for a terminal.
    public let log: @Sendable (String) -> Void

    /// A controller for the fleet on `brokerURL` keeping its state in `store`; progress lines go to `log`.
    public init(
        brokerURL: String, username: String? = nil, password: String? = nil, tlsCAFile: String? = nil, store: FederationStore,
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        broker = FleetBroker(url: brokerURL, username: username, password: password, tlsCAFile: tlsCAFile)
        self.store = store
        self.log = log
    }

    /// Starts a run by `settings` and `plan`, or resumes the one the store holds for the same (name, version).
    /// With a base version and no labels, the version's labels, rank and targets (as the workers report it) are the
    /// plan's.
    public func start(_ settings: Settings, plan given: RoundPlan) async throws -> Report {
        try settings.validate()
        if let current = try store.run(), current.state == "running", current.name == settings.name, current.version == settings.version {
            log("resuming the run of \(current.name) \(current.version) after round \(current.roundsDone)")
            return try await run()
        }
        var plan = given
        if plan.baseVersion != nil {
            var probe = settings
            let (_, base) = try await discover(&probe, baseVersion: plan.baseVersion)
            if let base, plan.labels.isEmpty {
                plan.labels = base.labels
                plan.rank = Int(base.rank)
                plan.targets = base.targets
            }
        }
        _ = try plan.trainerOptions(round: 1)
        try FederatedAggregator(method: plan.method, privacy: settings.privacy).validate()
        var stored = settings
        stored.outDirectory = URL(fileURLWithPath: settings.outDirectory).standardizedFileURL.path
        let document = StoredRun(settings: stored, plan: plan)
        try store.create(FederationStore.RunRow(
            name: settings.name, version: settings.version, run: UUID().uuidString.lowercased().prefix(12).description, state: "running",
            reason: "", settings: try JSONEncoder().encode(document), roundsDone: 0, global: Data()))
        return try await run()
    }

    /// The report of what the store holds now.
    public static func report(store: FederationStore, staged: [String] = []) throws -> Report {
        guard let row = try store.run() else { throw FleetError.noRollout(path: store.path) }
        let stored = try JSONDecoder().decode(StoredRun.self, from: row.settings)
        let rounds = try store.rounds().compactMap { try? JSONDecoder().decode(RoundReport.self, from: $0) }
        let privacy = stored.settings.privacy
        return Report(
            state: row.state, reason: row.reason, name: row.name, version: row.version, rounds: rounds, out: stored.settings.outDirectory,
            staged: staged, epsilon: privacy?.epsilon(rounds: rounds.count), delta: privacy?.delta)
    }

    /// Settings and plan as the store keeps them.
    struct StoredRun: Codable {
        var settings: Settings
        var plan: RoundPlan
    }

    // MARK: The run

    private func run() async throws -> Report {
        try store.claim()
        defer { try? store.release() }
        guard let row = try store.run() else { throw FleetError.noRollout(path: store.path) }
        var stored = try JSONDecoder().decode(StoredRun.self, from: row.settings)
        let aggregator = FederatedAggregator(method: stored.plan.method, privacy: stored.settings.privacy)
        var global: TensorSet? = row.global.isEmpty ? nil : try TensorSet(safetensors: Array(row.global), name: "the stored global adapter")
        // Under differential privacy the noise must be unpredictable; otherwise a seeded draw order is enough.
        var system = SystemRandomNumberGenerator()
        var workers: [String] = []
        for round in stride(from: row.roundsDone + 1, through: stored.settings.rounds, by: 1) {
            // Boxes come and go: each round goes to the workers online now.
            let learned = stored.settings.baseFingerprint
            workers = try await discover(&stored.settings, baseVersion: global == nil ? stored.plan.baseVersion : nil).workers
            if learned.isEmpty { try store.updateSettings(try JSONEncoder().encode(stored)) }
            let key = (name: row.name, run: row.run, round: round)
            let outcome = await self.round(key, global: global, workers: workers, stored: stored)
            var report = outcome.report
            let updates: [ClientUpdate]
            if global == nil {
                let first = aggregator.firstRound(outcome.updates)
                for refusal in first.refused { report.skipped[refusal.worker] = refusal.reason }
                global = first.global
                updates = first.usable
            } else {
                updates = outcome.updates.filter { update in
                    do {
                        try aggregator.check(update, against: global!)
                        return true
                    } catch {
                        report.skipped[update.worker] = "\(error)"
                        return false
                    }
                }
            }
            guard let current = global, !updates.isEmpty else {
                let reason = "round \(round): no worker sent a usable update (\(report.skipped.map { "\($0.key): \($0.value)" }.sorted().joined(separator: "; ")))"
                try store.setState("aborted", reason: reason)
                log("aborted: \(reason)")
                return try Self.report(store: store)
            }
            global = try aggregator.aggregate(global: current, updates: updates, random: &system)
            report.clients = updates.count
            report.examples = updates.reduce(0) { $0 + $1.examples }
            let accuracies = updates.compactMap(\.localAccuracy)
            report.meanLocalAccuracy = accuracies.isEmpty ? nil : accuracies.reduce(0, +) / Double(accuracies.count)
            try store.completeRound(round, report: try JSONEncoder().encode(report), global: Data(global!.safetensors()))
            try store.heartbeat()
            let accuracy = report.meanLocalAccuracy.map { String(format: "%.3f", $0) } ?? "-"
            log("round \(round)/\(stored.settings.rounds): \(report.clients) clients, \(report.examples) examples, \(report.bytesUp) bytes up, \(report.bytesDown) bytes down, mean local accuracy \(accuracy)"
                + (report.skipped.isEmpty ? "" : ", skipped \(report.skipped.keys.sorted().joined(separator: ", "))"))
        }
        guard let final = global else { throw FleetError.state(path: store.path, reason: "the run completed no round") }
        if workers.isEmpty { workers = try await discover(&stored.settings, baseVersion: nil).workers }
        let staged = try await finish(final, stored: stored, workers: workers)
        try store.setState("completed", reason: "")
        log("completed: \(stored.settings.outDirectory), staged as \(stored.settings.version) on \(staged.count) workers")
        return try Self.report(store: store, staged: staged)
    }

    /// The online workers the selector takes that answer GetStatus as themselves on the run's base model (the first
    /// worker's, when the run has none yet), and with `baseVersion` hold that version of the name with the same
    /// digest as the first worker that holds it (whose description is returned).
    private func discover(_ settings: inout Settings, baseVersion: String?) async throws -> (workers: [String], base: Adapterd_V1_AdapterInfo?) {
        let watcher = try await FleetWatcher(options: try broker.options(clientPrefix: "adapterctl-federate-"))
        defer { watcher.close() }
        let selector = try FleetSelector(settings.selector)
        let claimed = try await watcher.discover(selector)
        let timeout = Duration.seconds(settings.workerTimeoutSeconds)
        let name = settings.name
        let answers = await withTaskGroup(of: (String, Adapterd_V1_GetStatusReply?, Adapterd_V1_AdapterInfo?).self) { group in
            for status in claimed {
                group.addTask {
                    guard let client = try? await client(for: status.worker, timeout: timeout) else { return (status.worker, nil, nil) }
                    defer { client.close() }
                    let reply = try? await client.control(.getStatus, Adapterd_V1_GetStatusRequest(), timeout: timeout)
                    guard let reply, RPCStatus(reply.status) == .ok, reply.worker == status.worker else { return (status.worker, nil, nil) }
                    guard let baseVersion else { return (status.worker, reply, nil) }
                    var request = Adapterd_V1_GetAdapterRequest()
                    request.name = name
                    let adapter = try? await client.control(.getAdapter, request, timeout: timeout)
                    return (status.worker, reply, adapter?.versions.first { $0.version == baseVersion })
                }
            }
            return await group.reduce(into: [(String, Adapterd_V1_GetStatusReply?, Adapterd_V1_AdapterInfo?)]()) { $0.append($1) }
        }.sorted { $0.0 < $1.0 }
        var workers: [String] = []
        var base: Adapterd_V1_AdapterInfo?
        for (worker, reply, version) in answers {
            guard let reply else {
                log("ignoring worker \(worker): no answer to GetStatus")
                continue
            }
            if settings.baseFingerprint.isEmpty {
                settings.baseFingerprint = reply.baseFingerprint
                settings.baseModel = reply.model
            }
            guard reply.baseFingerprint == settings.baseFingerprint else {
                log("ignoring worker \(worker): it serves another base model than the run's")
                continue
            }
            if let baseVersion {
                guard let version else {
                    log("ignoring worker \(worker): it holds no \(name) \(baseVersion) to start from")
                    continue
                }
                if base == nil { base = version }
                guard version.sha256 == base?.sha256 else {
                    log("ignoring worker \(worker): its \(name) \(baseVersion) has other files than the run's")
                    continue
                }
            }
            workers.append(worker)
        }
        guard !workers.isEmpty else { throw FleetError.noWorkers(selector: settings.selector) }
        return (workers, base)
    }

    /// A connection to `worker`.
    private func client(for worker: String, timeout: Duration) async throws -> AdapterdClient {
        try await broker.client(for: worker, timeout: timeout)
    }

    /// What one round gathered.
    private struct RoundOutcome {
        var updates: [ClientUpdate]
        var report: RoundReport
    }

    /// Offers round `key` to `workers`, trains on up to `clientsPerRound` of those that accept, and collects their
    /// updates by the round's deadline.
    private func round(
        _ key: (name: String, run: String, round: Int), global: TensorSet?, workers: [String], stored: StoredRun
    ) async -> RoundOutcome {
        let settings = stored.settings
        let globalBytes = global?.safetensors() ?? []
        let planJSON = String(decoding: (try? JSONEncoder().encode(stored.plan)) ?? Data(), as: UTF8.self)
        var offer = Adapterd_V1_FederatedOffer()
        offer.size = Int64(globalBytes.count)
        offer.sha256 = globalBytes.isEmpty ? "" : AdapterDigest.sha256(of: globalBytes)
        offer.chunkSize = Int32(settings.chunkSize)
        offer.baseFingerprint = settings.baseFingerprint
        offer.plan = planJSON
        offer.minExamples = Int32(settings.minExamples)
        let deadline = ContinuousClock.now + .seconds(settings.roundTimeoutSeconds)
        let timeout = Duration.seconds(settings.workerTimeoutSeconds)
        let participant = FederatedParticipant(
            connect: { worker in try await client(for: worker, timeout: timeout) }, key: key, offer: offer, global: globalBytes,
            chunkSize: settings.chunkSize, timeout: timeout, deadline: deadline)
        // Offer to every worker; pick the round's clients among those that accept, in a seeded order.
        let accepted = await withTaskGroup(of: (String, String?).self) { group in
            for worker in workers { group.addTask { (worker, await participant.offer(to: worker)) } }
            return await group.reduce(into: [(String, String?)]()) { $0.append($1) }
        }
        var report = RoundReport(round: key.round, clients: 0, examples: 0, bytesUp: 0, bytesDown: 0, meanLocalAccuracy: nil, skipped: [:])
        for case let (worker, reason?) in accepted { report.skipped[worker] = reason }
        var random = SeededRandom(seed: stored.plan.seed &+ UInt64(key.round))
        var chosen = accepted.filter { $0.1 == nil }.map(\.0).sorted().shuffled(using: &random)
        if settings.clientsPerRound > 0 { chosen = Array(chosen.prefix(settings.clientsPerRound)) }
        let results = await withTaskGroup(of: (String, Result<(ClientUpdate, Int64, Int64), ParticipantError>).self) { group in
            for worker in chosen { group.addTask { (worker, await participant.train(on: worker)) } }
            return await group.reduce(into: [(String, Result<(ClientUpdate, Int64, Int64), ParticipantError>)]()) { $0.append($1) }
        }
        var updates: [ClientUpdate] = []
        for (worker, result) in results.sorted(by: { $0.0 < $1.0 }) {
            switch result {
            case .success(let (update, up, down)):
                updates.append(update)
                report.bytesUp += up
                report.bytesDown += down
            case .failure(let error):
                report.skipped[worker] = error.reason
                report.bytesDown += error.bytesDown
            }
        }
        return RoundOutcome(updates: updates, report: report)
    }

    /// Writes the global adapter as PEFT files and pushes it, not activated, to every worker of the run.
    private func finish(_ global: TensorSet, stored: StoredRun, workers: [String]) async throws -> [String] {
        let plan = stored.plan
        let directory = stored.settings.outDirectory
        try TrainableAdapter.write(
            global.names.map { ($0, global.tensors[$0]!.shape, global.tensors[$0]!.values) }, labels: plan.labels, rank: plan.rank,
            alpha: plan.alpha, targets: try plan.slots(),
            // The workers' tensor names say which family's task model they belong to.
            family: global.names.lazy.compactMap(EncoderFamily.init(peftTensorName:)).first ?? .bert,
            baseModel: stored.settings.baseModel.isEmpty ? "sentence-transformers/all-MiniLM-L6-v2" : stored.settings.baseModel,
            to: directory)
        let payload = try AdapterBundle.encode(directory: directory)
        let settings = stored.settings
        let timeout = Duration.seconds(settings.workerTimeoutSeconds)
        let staged = await withTaskGroup(of: String?.self) { group in
            for worker in workers {
                group.addTask {
                    do {
                        let client = try await client(for: worker, timeout: timeout)
                        defer { client.close() }
                        let pusher = AdapterPusher(client: client, chunkSize: settings.chunkSize, timeout: timeout, retries: 2)
                        let manifest = pusher.manifest(payload: payload, name: settings.name, version: settings.version, baseFingerprint: settings.baseFingerprint)
                        let signature = try settings.signingKey.isEmpty ? [] : SigningKeys.sign(manifest, with: SigningKeys.privateKey(file: settings.signingKey))
                        _ = try await pusher.push(payload, manifest: manifest, signature: signature, activate: false, reason: "federated run, \(settings.rounds) rounds")
                        return worker
                    } catch let error as RPCError where error.status == .alreadyExists {
                        // A resumed run finds the version it staged before the controller stopped.
                        return worker
                    } catch {
                        log("not staged on \(worker): \(error)")
                        return nil
                    }
                }
            }
            return await group.reduce(into: [String]()) { if let worker = $1 { $0.append(worker) } }
        }
        return staged.sorted()
    }
}
