import AdapterdAPI
import AdapterdClient
import AdapterFormats
import CanaryJudging
import Foundation
import MQTTRPC

/// Rolls an adapter version out over a fleet in waves — a canary wave, then growing ones — pushing (as a delta)
/// and activating it on each worker, and between waves comparing how it serves with the version it replaced on the
/// same workers (error rate, p95 latency, predicted-label drift, top-1 confidence). On any threshold, an explicit
/// abort, or a failed worker (per policy) it rolls every worker it touched back and says why. Every step is in the
/// `FleetStore`, so a killed controller resumes.
public struct FleetController: Sendable {
    /// How a rollout ended.
    public struct Report: Sendable, Equatable, Codable {
        /// One worker's end: its step (with detail) and the version it serves.
        public struct Worker: Sendable, Equatable, Codable {
            /// "verified", "rolled back: …", "skipped: …", "failed: …", "pending"…
            public var outcome: String
            /// The version it serves now ("" when none or unknown).
            public var active: String
        }

        /// "completed", "aborted", or while it runs "running" / "aborting".
        public var state: String
        /// Why it was aborted ("" otherwise).
        public var reason: String
        /// Bytes pushed to all workers.
        public var bytesSent: Int64
        /// By worker id.
        public var workers: [String: Worker]
        /// Each judged wave's verdict, in wave order: every criterion with its interval (absent in older reports).
        public var verdicts: [CanaryVerdict]?
    }

    /// The broker and how to log in.
    public let broker: FleetBroker
    /// The rollout's state file.
    public let store: FleetStore
    /// Progress lines, for a terminal.
    public let log: @Sendable (String) -> Void

    /// A controller for the fleet on `brokerURL` keeping its state in `store`; progress lines go to `log`.
    public init(
        brokerURL: String, username: String? = nil, password: String? = nil, tlsCAFile: String? = nil, store: FleetStore,
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        broker = FleetBroker(url: brokerURL, username: username, password: password, tlsCAFile: tlsCAFile)
        self.store = store
        self.log = log
    }

    /// The MQTT options of a connection that watches the fleet.
    public var watcherOptions: MQTTOptions {
        get throws { try broker.options(clientPrefix: "adapterctl-fleet-") }
    }

    /// Plans a rollout of `adapterDirectory` as (name, version) over the online workers `selector` takes, writes
    /// the plan to the store, and runs it.
    public func start(
        name: String, version: String, adapterDirectory: String, selector: FleetSelector, policy: RolloutPolicy, signingKey: String? = nil
    ) async throws -> Report {
        try policy.validate()
        _ = try AdapterBundle.encode(directory: adapterDirectory)
        let watcher = try await FleetWatcher(options: watcherOptions)
        defer { watcher.close() }
        let workers = await verified(try await watcher.discover(selector), policy: policy)
        guard !workers.isEmpty else { throw FleetError.noWorkers(selector: selector.description) }
        var rows: [FleetStore.WorkerRow] = []
        var index = 0
        for (wave, size) in policy.waves(for: workers.count).enumerated() {
            for worker in workers[index..<(index + size)] {
                // What it serves now, as its retained status says (confirmed when the wave reaches it).
                let active = worker.adapters?.first { $0.name == name }?.active ?? ""
                rows.append(FleetStore.WorkerRow(worker: worker.worker, wave: wave, state: .pending, previous: active, detail: ""))
            }
            index += size
        }
        let encoded = try JSONEncoder().encode(policy)
        try store.create(
            FleetStore.RolloutRow(name: name, version: version, adapterDirectory: adapterDirectory, state: "running", reason: "", bytesSent: 0, policy: encoded, signingKey: signingKey ?? ""),
            workers: rows, archive: { [store] in try JSONEncoder().encode(Self.report(store: store)) })
        log("rollout of \(name) \(version) to \(workers.count) workers in waves of \(policy.waves(for: workers.count).map(String.init).joined(separator: ", "))")
        return try await run(watcher: watcher)
    }

    /// The workers among `claimed` that answer GetStatus on their own control topic as themselves, in order. A
    /// retained status is only a claim (anyone may have published it, and a worker gone for good leaves its own):
    /// the controller pushes to and activates on no worker it has not heard from.
    func verified(_ claimed: [WorkerStatus], policy: RolloutPolicy) async -> [WorkerStatus] {
        let answered = await withTaskGroup(of: (String, String?).self) { group in
            for status in claimed {
                group.addTask {
                    do {
                        let client = try await client(for: status.worker, policy: policy)
                        defer { client.close() }
                        let reply = try await client.control(.getStatus, Adapterd_V1_GetStatusRequest(), timeout: policy.workerTimeout)
                        guard RPCStatus(reply.status) == .ok else { return (status.worker, "GetStatus answered \(reply.error)") }
                        return (status.worker, reply.worker == status.worker ? nil : "GetStatus was answered by '\(reply.worker)'")
                    } catch {
                        return (status.worker, "no answer to GetStatus (\(error))")
                    }
                }
            }
            return await group.reduce(into: [String: String?]()) { $0[$1.0] = $1.1 }
        }
        return claimed.filter { status in
            guard let problem = answered[status.worker] ?? "not asked" else { return true }
            log("ignoring worker \(status.worker): its retained status says online, but \(problem)")
            return false
        }
    }

    /// Resumes the rollout the store holds (after a controller was stopped or killed).
    public func resume() async throws -> Report {
        let watcher = try await FleetWatcher(options: watcherOptions)
        defer { watcher.close() }
        // Metrics documents and statuses are retained: give them a moment to arrive.
        _ = try await watcher.discover(FleetSelector(""))
        return try await run(watcher: watcher)
    }

    /// Asks the controller running the rollout (or the next resume) to abort it and roll back.
    public static func requestAbort(store: FleetStore, reason: String) throws {
        guard let rollout = try store.rollout() else { throw FleetError.noRollout(path: store.path) }
        guard rollout.state == "running" else { return }
        try store.setState("aborting", reason: reason)
    }

    /// The report of what the store holds now.
    public static func report(store: FleetStore) throws -> Report {
        guard let rollout = try store.rollout() else { throw FleetError.noRollout(path: store.path) }
        var workers: [String: Report.Worker] = [:]
        for row in try store.workers() {
            let active: String
            switch row.state {
            case .activated, .verified: active = rollout.version
            case .rolledBack, .failed, .pending, .skipped, .pushed: active = row.previous
            }
            workers[row.worker] = Report.Worker(outcome: row.state.rawValue + (row.detail.isEmpty ? "" : ": " + row.detail), active: active)
        }
        let verdicts = try store.verdicts().compactMap { try? JSONDecoder().decode(CanaryVerdict.self, from: $0.verdict) }
        return Report(state: rollout.state, reason: rollout.reason, bytesSent: rollout.bytesSent, workers: workers, verdicts: verdicts)
    }

    // MARK: The rollout

    private enum Abort: Error {
        case because(String)
    }

    private func run(watcher: FleetWatcher) async throws -> Report {
        try store.claim()
        defer { try? store.release() }
        guard let rollout = try store.rollout() else { throw FleetError.noRollout(path: store.path) }
        if rollout.state == "completed" || rollout.state == "aborted" { return try Self.report(store: store) }
        let policy = try JSONDecoder().decode(RolloutPolicy.self, from: rollout.policy)
        let payload = try AdapterBundle.encode(directory: rollout.adapterDirectory)
        do {
            if rollout.state == "aborting" { throw Abort.because(rollout.reason) }
            let waves = Dictionary(grouping: try store.workers(), by: \.wave).sorted { $0.key < $1.key }
            for (wave, rows) in waves {
                try checkAborting()
                if rows.allSatisfy({ [.verified, .skipped].contains($0.state) }) { continue }
                log("wave \(wave + 1): \(rows.map(\.worker).joined(separator: ", "))")
                var touched: [String] = []
                for row in rows {
                    if let worker = try await deploy(row, rollout: rollout, payload: payload, policy: policy) { touched.append(worker) }
                    try store.heartbeat()
                }
                // A wave whose every worker was skipped proved nothing about the version: it never counts as passed.
                guard !touched.isEmpty else { throw Abort.because("wave \(wave + 1) reached none of its workers (\(rows.map(\.worker).joined(separator: ", ")))") }
                try await judge(wave: wave, workers: touched, rollout: rollout, policy: policy, watcher: watcher)
            }
            try store.setState("completed", reason: "")
            log("completed")
        } catch Abort.because(let reason) {
            log("aborting: \(reason)")
            try await rollBack(rollout: rollout, reason: reason, policy: policy)
            try store.setState("aborted", reason: reason)
        }
        return try Self.report(store: store)
    }

    /// A connection to `worker` with the policy's per-worker timeout.
    private func client(for worker: String, policy: RolloutPolicy) async throws -> AdapterdClient {
        try await broker.client(for: worker, timeout: policy.workerTimeout)
    }

    /// The worker's view of adapter `name`: its active version and the others it holds.
    private static func adapter(_ name: String, on client: AdapterdClient, timeout: Duration) async throws -> Adapterd_V1_GetAdapterReply {
        var get = Adapterd_V1_GetAdapterRequest()
        get.name = name
        return try await client.control(.getAdapter, get, timeout: timeout)
    }

    private func checkAborting() throws {
        if let rollout = try store.rollout(), rollout.state == "aborting" { throw Abort.because(rollout.reason.isEmpty ? "aborted by the operator" : rollout.reason) }
    }

    /// Pushes and activates on one worker; returns its id once the new version is active there, nil when it was
    /// skipped. A refusal aborts the rollout.
    private func deploy(_ row: FleetStore.WorkerRow, rollout: FleetStore.RolloutRow, payload: [UInt8], policy: RolloutPolicy) async throws -> String? {
        var row = row
        switch row.state {
        case .activated, .verified: return row.worker
        case .skipped: return nil
        case .rolledBack, .failed: throw Abort.because("worker \(row.worker) had failed: \(row.detail)")
        case .pending, .pushed: break
        }
        var attempt = 0
        while true {
            attempt += 1
            do {
                let client = try await client(for: row.worker, policy: policy)
                defer { client.close() }
                let timeout = policy.workerTimeout
                if row.state == .pending {
                    let current = try await Self.adapter(rollout.name, on: client, timeout: timeout)
                    row.previous = RPCStatus(current.status) == .ok ? current.active : ""
                    row.state = .pushed
                    try store.save(row)
                }
                let pusher = AdapterPusher(client: client, chunkSize: 64 << 10, timeout: timeout, retries: 2)
                let manifest = pusher.manifest(payload: payload, name: rollout.name, version: rollout.version)
                let signature = try rollout.signingKey.isEmpty ? [] : SigningKeys.sign(manifest, with: SigningKeys.privateKey(file: rollout.signingKey))
                let reason = "fleet rollout of \(rollout.version), wave \(row.wave + 1)"
                let shadow = Float(policy.shadow ?? 0)
                // With shadow comparison the activation says so: pushed staged, then activated with the fraction.
                let outcome = try await pusher.push(payload, manifest: manifest, signature: signature, activate: shadow == 0, reason: reason)
                if shadow > 0 {
                    var activate = Adapterd_V1_ActivateAdapterRequest()
                    (activate.name, activate.version, activate.reason, activate.shadow) = (rollout.name, rollout.version, reason, shadow)
                    let reply = try await client.control(.activateAdapter, activate, timeout: timeout)
                    guard RPCStatus(reply.status) == .ok else { throw RPCError(RPCStatus(reply.status), reply.error) }
                }
                try store.addBytesSent(outcome.bytesSent)
                row.state = .activated
                row.detail = "\(outcome.bytesSent) bytes sent"
                try store.save(row)
                log("  \(row.worker): \(rollout.version) active (was \(row.previous.isEmpty ? "none" : row.previous)), \(outcome.bytesSent) of \(payload.count) bytes sent")
                return row.worker
            } catch let error as RPCError {
                row.state = .failed
                row.detail = "\(error.status.name): \(error.message)"
                try store.save(row)
                throw Abort.because("worker \(row.worker) refused \(rollout.version): \(error.message)")
            } catch let error as MQTTError {
                guard attempt > policy.retries else { continue }
                if policy.offline == "skip" {
                    row.state = .skipped
                    row.detail = "unreachable after \(attempt) attempts (\(error))"
                    try store.save(row)
                    log("  \(row.worker): skipped, unreachable")
                    return nil
                }
                row.state = .failed
                row.detail = "unreachable (\(error))"
                try store.save(row)
                throw Abort.because("worker \(row.worker) did not answer (\(error))")
            }
        }
    }

    /// Waits until the wave's workers have served enough with the new version, then compares it with the version it
    /// replaced on each of the same workers (`CanaryJudge`, one stratum per worker), until every criterion is decided
    /// or the wave's time is up; the verdict is kept in the store and logged criterion by criterion.
    private func judge(wave: Int, workers: [String], rollout: FleetStore.RolloutRow, policy: RolloutPolicy, watcher: FleetWatcher) async throws {
        guard !workers.isEmpty else { return }
        let rows = try store.workers().filter { workers.contains($0.worker) }
        let started = ContinuousClock.now
        var verdict = CanaryVerdict(criteria: [], violation: nil)
        var requests = 0
        while true {
            try checkAborting()
            try store.heartbeat()
            let strata = rows.compactMap { row -> CanaryStratum? in
                guard let document = watcher.metrics(of: row.worker) else { return nil }
                return CanaryStratum(
                    worker: row.worker, canary: CanaryFigures(name: rollout.name, version: rollout.version, documents: [document]),
                    baseline: row.previous.isEmpty ? CanaryFigures() : CanaryFigures(name: rollout.name, version: row.previous, documents: [document]))
            }
            requests = CanaryFigures.total(strata.map(\.canary.requests))
            let elapsed = (ContinuousClock.now - started).inSeconds
            let timedOut = elapsed >= policy.waveTimeoutSeconds
            if timedOut, requests == 0 {
                throw Abort.because("the new version served no request on wave \(wave + 1) within \(Int(policy.waveTimeoutSeconds)) s")
            }
            if timedOut || (requests >= policy.minRequests && elapsed >= policy.soakSeconds) {
                verdict = CanaryJudge.verdict(strata, named: "the previous version", thresholds: policy.thresholds, final: timedOut)
                if verdict.violation != nil || !verdict.undecided {
                    if timedOut, verdict.criteria.contains(where: { $0.samples < $0.needed }) {
                        log("wave \(wave + 1): time is up; judged on the figures where intervals were still wide")
                    }
                    break
                }
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        try store.saveVerdict(wave: wave, try JSONEncoder().encode(verdict))
        for criterion in verdict.criteria { log("  wave \(wave + 1): \(criterion.summary)") }
        if let reason = verdict.violation { throw Abort.because("wave \(wave + 1): \(reason)") }
        for var row in rows where row.state == .activated {
            row.state = .verified
            try store.save(row)
        }
        log("wave \(wave + 1) passed: \(requests) requests")
    }

    /// Returns every worker the rollout activated the new version on to the version before, with the reason in
    /// its History.
    private func rollBack(rollout: FleetStore.RolloutRow, reason: String, policy: RolloutPolicy) async throws {
        for var row in try store.workers() where [.activated, .verified, .pushed].contains(row.state) {
            do {
                let client = try await client(for: row.worker, policy: policy)
                defer { client.close() }
                let timeout = policy.workerTimeout
                let why = "fleet rollout of \(rollout.version) aborted: \(reason)"
                let current = try await Self.adapter(rollout.name, on: client, timeout: timeout)
                if current.active == rollout.version, !row.previous.isEmpty {
                    var activate = Adapterd_V1_ActivateAdapterRequest()
                    activate.name = rollout.name
                    activate.version = row.previous
                    activate.reason = why
                    let reply = try await client.control(.activateAdapter, activate, timeout: timeout)
                    guard RPCStatus(reply.status) == .ok else { throw RPCError(RPCStatus(reply.status), reply.error) }
                } else if current.active == rollout.version {
                    // It was the name's first version there: nothing to return to, so it goes.
                    var unload = Adapterd_V1_UnloadAdapterRequest()
                    unload.name = rollout.name
                    unload.version = rollout.version
                    _ = try await client.control(.unloadAdapter, unload, timeout: timeout)
                }
                row.state = .rolledBack
                row.detail = reason
                try store.save(row)
                log("  \(row.worker): back on \(row.previous.isEmpty ? "no version" : row.previous)")
            } catch {
                row.detail = "rollback failed: \(error)"
                try store.save(row)
                log("  \(row.worker): rollback failed: \(error)")
            }
        }
    }
}

private extension Duration {
    var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
