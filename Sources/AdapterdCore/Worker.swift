import AdapterdAPI
import AdapterdClient
import AdapterEngine
import AdapterFormats
import AdapterRuntime
import Foundation
import Logging
import Metrics
import MQTTRPC
import ServiceLifecycle

/// adapterd's worker: takes inference and control requests from MQTT, runs them, and replies.
///
/// A `Service`: `run()` connects, announces the worker online (retained status; a Last Will turns it offline if
/// the process dies), serves until graceful shutdown, then stops taking requests, finishes those in flight,
/// publishes the offline status and disconnects.
public final class Worker: Service, Sendable {
    /// adapterd's version, as the status reports it.
    public static let version = "0.1.0"

    public let configuration: WorkerConfiguration
    public let topics: Topics
    public let engine: InferenceEngine
    public let registry: AdapterRegistry
    public var stats: WorkerStats { services.stats }
    let executor: BatchExecutor
    let client: MQTTClient
    let intake = IntakeTracker()
    /// Figures for the metrics topic, Prometheus and the dashboard.
    public let metrics: WorkerMetrics
    /// What the handlers share.
    public let services: WorkerServices
    /// Decodes, de-duplicates, runs and answers requests through the method table.
    public let server: RPCServer
    /// A second connection for the pool's shared subscription (see `run`).
    let poolClient: MQTTClient?
    private let readiness = Readiness()
    let logger: Logger
    let startedAt = Date()
    /// A signal per lifecycle event that changes which versions the worker holds: the retained status follows.
    private let holdingsChanged: AsyncStream<Void>
    private let holdingsContinuation: AsyncStream<Void>.Continuation

    /// Loads the base model and prepares the connection (nothing is sent until `run`). Metrics go to
    /// `metricsFactory` (default: the process's bootstrapped metrics system).
    public init(configuration: WorkerConfiguration, logger: Logger = Logger(label: "adapterd"), metricsFactory: MetricsFactory = MetricsSystem.factory) throws {
        if let problem = AdapterName.problem(with: configuration.workerID) {
            throw RPCError(.invalidArgument, "worker id '\(configuration.workerID)' is invalid: \(problem)")
        }
        guard configuration.workerID != Topics.poolWorker else {
            throw RPCError(.invalidArgument, "worker id '\(Topics.poolWorker)' is reserved for pool topics; choose another")
        }
        if let pool = configuration.pool, let problem = AdapterName.problem(with: pool) {
            throw RPCError(.invalidArgument, "pool name '\(pool)' is invalid: \(problem)")
        }
        self.configuration = configuration
        self.logger = logger
        topics = Topics(worker: configuration.workerID, pool: configuration.pool)
        var options = try MQTTOptions.parse(url: configuration.brokerURL, clientID: "adapterd-" + configuration.workerID)
        options.protocolVersion = configuration.protocolVersion == .v5 ? .v5 : .v311
        options.cleanStart = false
        options.sessionExpiry = configuration.sessionExpiry
        options.receiveMaximum = configuration.receiveMaximum
        options.username = configuration.username
        options.password = configuration.password
        if let ca = configuration.tlsCAFile {
            options.tls = MQTTOptions.TLS(caFile: ca, certFile: configuration.tlsCertFile, keyFile: configuration.tlsKeyFile)
        } else if options.tls != nil {
            options.tls = MQTTOptions.TLS(caFile: nil, certFile: configuration.tlsCertFile, keyFile: configuration.tlsKeyFile)
        }
        options.will = MQTTOptions.Will(topic: topics.status, payload: Self.status("offline", configuration: configuration, startedAt: startedAt).json())
        client = try MQTTClient(options: options)
        if configuration.pool != nil {
            // Its own session that ends with the connection: when this worker dies, the broker stops handing it
            // pool requests at once instead of queueing them for a session that may never come back.
            var poolOptions = options
            poolOptions.clientID = "adapterd-" + configuration.workerID + "-pool"
            poolOptions.cleanStart = true
            poolOptions.sessionExpiry = 0
            poolOptions.will = nil
            poolClient = try MQTTClient(options: poolOptions)
        } else {
            poolClient = nil
        }
        let topics = topics, client = client
        let transport = MQTTTransport(client: client, logger: logger)
        let (holdingsChanged, holdingsContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        self.holdingsChanged = holdingsChanged
        self.holdingsContinuation = holdingsContinuation
        services = try WorkerServices(configuration: configuration, logger: logger, metricsFactory: metricsFactory, startedAt: startedAt) { event in
            // Events made before the first connection (the configured adapters, loaded at start) have nobody to
            // reach: the retained status announced on connecting lists what is held.
            if client.isConnected {
                transport.send(topics.events, payload: event.json(), properties: MQTTProperties(contentType: "application/json"))
            }
            if event.event.changesHoldings { holdingsContinuation.yield() }
        }
        engine = services.engine
        executor = services.executor
        registry = services.registry
        metrics = services.metrics
        server = RPCServer(
            topics: topics, workerID: configuration.workerID, inference: services.inferenceMethod, control: services.controlMethods,
            stats: services.stats, duplicateWindow: configuration.duplicateWindow, publishResults: configuration.publishResults,
            maxRequestBytes: configuration.maxRequestBytes, logger: logger, transport: transport)
    }

    static func status(_ state: String, configuration: WorkerConfiguration, startedAt: Date, holdings: [WorkerStatus.Holding]? = nil) -> WorkerStatus {
        WorkerStatus(
            state: state, worker: configuration.workerID, version: version,
            model: URL(fileURLWithPath: configuration.modelDirectory).lastPathComponent,
            startedAt: startedAt.formatted(.iso8601), precision: configuration.precision.rawValue,
            kernelPath: min(configuration.kernelPath ?? .detected, .detected).description,
            labels: configuration.labels.isEmpty ? nil : configuration.labels, adapters: holdings)
    }

    /// The adapter versions the registry holds, by name.
    private func holdings() async -> [WorkerStatus.Holding] {
        let entries = await registry.list()
        return Dictionary(grouping: entries, by: \.name).map { name, versions in
            WorkerStatus.Holding(
                name: name, active: versions.first { $0.record.state == .active }?.version ?? "",
                versions: versions.map(\.version).sorted())
        }.sorted { $0.name < $1.name }
    }

    public func run() async throws {
        let restored = try await registry.restore()
        for skipped in restored.skipped {
            logger.warning("registered adapter not restored", metadata: ["name": "\(skipped.name)", "version": "\(skipped.version)", "reason": "\(skipped.reason)"])
        }
        for record in restored.activated {
            logger.notice("activated a name that had no active version", metadata: ["name": "\(record.name)", "version": "\(record.version)"])
        }
        for directory in restored.removedFiles {
            logger.notice("removed adapter files no version refers to (left by a stopped load)", metadata: ["directory": "\(directory)"])
        }
        if TrainingJobs.removeLeftovers(data: configuration.dataDirectory) {
            logger.notice("removed the files of a training the worker was stopped in (nothing of it was staged)")
        }
        for stale in await services.pushes.pruneStale(olderThan: Double(configuration.pushExpiry.components.seconds)) {
            logger.notice("removed an unfinished push", metadata: ["push": "\(stale)"])
        }
        for item in configuration.preload {
            let entry = try await registry.load(name: item.name, version: item.version, path: item.path, actor: "config")
            logger.info("loaded adapter", metadata: ["name": "\(entry.name)", "version": "\(entry.version)", "bytes": "\(entry.record.sizeBytes)"])
        }
        do {
            try await connectWithBackoff(client)
            for filter in [topics.inferFilter, topics.controlFilter] + [topics.poolControlFilter].compactMap({ $0 }) {
                try client.subscribe(filter, qos: 1)
            }
            if let poolClient, let filter = topics.poolInferFilter {
                try poolClient.subscribe(filter, qos: 1)
                try await connectWithBackoff(poolClient)
            }
        } catch is CancellationError {
            // Stopped (SIGTERM) before the broker was reachable: nothing was taken, so the stop is clean, not an
            // error a service manager would report as a failed unit.
            logger.notice("stopped before the broker was reachable")
            client.disconnect()
            poolClient?.disconnect()
            executor.shutdown()
            return
        }
        try await publishStatus("online")
        readiness.set(true)
        logger.info("serving", metadata: ["worker": "\(configuration.workerID)", "broker": "\(configuration.brokerURL)", "pool": "\(configuration.pool ?? "-")"])

        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.reportMetrics() }
                group.addTask { await self.services.runShadowComparisons() }
                group.addTask { await self.services.runMerges() }
                group.addTask {
                    // Fleet controllers discover what each worker holds from its retained status.
                    for await _ in self.holdingsChanged { try? await self.publishStatus("online") }
                }
                group.addTask {
                    // The broker published the Last Will ("offline") when it took the worker for gone (a missed
                    // keep-alive, another client with the worker's id): every new connection announces it again.
                    for await _ in self.client.connections where self.readiness.value { try? await self.publishStatus("online") }
                }
                // Control requests run one at a time (the server's control lane) and queue here as messages, not as a
                // task each: a flood of 10,000 of them held ~100 MiB in waiting tasks that malloc kept afterwards.
                let (control, controlQueue) = AsyncStream.makeStream(of: MQTTMessage.self)
                group.addTask {
                    for await message in control {
                        await self.server.handle(message)
                        self.intake.answered()
                    }
                }
                group.addTask {
                    await withDiscardingTaskGroup { streams in
                        for stream in [self.client.messages] + [self.poolClient?.messages].compactMap({ $0 }) {
                            streams.addTask {
                                await withDiscardingTaskGroup { requests in
                                    for await message in stream {
                                        self.intake.received()
                                        if case .control = self.topics.route(message.topic) {
                                            controlQueue.yield(message)
                                            continue
                                        }
                                        requests.addTask {
                                            await self.server.handle(message)
                                            self.intake.answered()
                                        }
                                    }
                                }
                            }
                        }
                    }
                    controlQueue.finish()
                }
            }
        } onGracefulShutdown: {
            Task { await self.drain() }
        }
        executor.shutdown()
    }

    /// Whether the worker is serving: connected to the broker with the model loaded (for `/readyz`).
    public var isReady: Bool { readiness.value && client.isConnected }

    /// Replies, events and statuses (QoS 1) published that the broker has not acknowledged yet.
    public var unacknowledgedPublishes: Int { client.unacknowledgedCount }

    /// Samples gauges every second and publishes the metrics document every `metricsInterval`, until draining.
    func reportMetrics() async {
        var nextPublish = ContinuousClock.now + configuration.metricsInterval
        while readiness.value {
            try? await Task.sleep(for: .seconds(1))
            let publishing = ContinuousClock.now >= nextPublish
            let state = await metricsState(peek: !publishing)
            await metrics.sample(state)
            guard publishing, readiness.value else { continue }
            nextPublish = ContinuousClock.now + configuration.metricsInterval
            let snapshot = await metrics.snapshot(state, reset: true)
            try? client.publish(topics.metrics, payload: snapshot.json(), qos: 0, retain: true, properties: MQTTProperties(contentType: "application/json"))
        }
    }

    /// The last few minutes, a point a second (for the dashboard's charts).
    public func metricsHistory() async -> [WorkerMetrics.HistoryPoint] {
        await metrics.history
    }

    /// The metrics document for the interval so far, without starting a new one (for the HTTP listener).
    public func currentMetrics() async -> MetricsSnapshot {
        await metrics.snapshot(metricsState(peek: true), reset: false)
    }

    /// The worker's figures for a metrics document; `peek` leaves the interval's largest batch in place.
    func metricsState(peek: Bool) async -> WorkerMetrics.WorkerState {
        let residency = await registry.cache.residency
        let registered = await registry.list().map { entry -> (String, String, String, String) in
            let cache = residency.pinned.contains(entry.name) ? "pinned" : residency.resident.contains(entry.key) ? "resident" : "cold"
            return (entry.name, entry.version, entry.record.state.rawValue, cache)
        }
        return WorkerMetrics.WorkerState(
            worker: configuration.workerID, state: await stats.draining ? "draining" : "online",
            uptimeSeconds: Date().timeIntervalSince(startedAt),
            requestsTotal: await stats.executed + stats.rejected, requestsFailed: await stats.failed,
            inFlight: await stats.inFlight, queueDepth: executor.queueDepth, batches: executor.counts,
            largestBatch: executor.largestBatch(reset: !peek),
            cache: await registry.cache.counters, cacheBudget: configuration.cacheMaxBytes, registered: registered,
            labelRechecks: services.engine.labelRechecks,
            merged: services.engine.mergeBudget.map { ($0.mergedCount, $0.bytes, $0.limit) })
    }

    /// Stop taking requests, wait for those in flight, go offline, disconnect.
    func drain() async {
        await stats.startDraining()
        readiness.set(false)
        // Leave the pool first: from now on the broker hands pool requests to the other workers.
        poolClient?.disconnect()
        logger.info("draining")
        // A training stops between two steps and stages nothing.
        await services.training.shutdown()
        // Everything taken from the stream must be answered before the connection closes; a short quiet period
        // lets requests the broker already sent arrive (and get their UNAVAILABLE) instead of being lost.
        while !intake.isIdle(quiet: .milliseconds(100)) { try? await Task.sleep(for: .milliseconds(5)) }
        await registry.flushPins()
        holdingsContinuation.finish()
        services.shadows.finish()
        services.engine.mergeBudget?.finishRequests()
        try? await publishStatus("offline")
        // Replies beyond the broker's receive maximum wait in libmosquitto's queue, which `disconnect` drops. While
        // they drain, a broker that was stalled hands over the requests it still held, one per acknowledgement:
        // those are answered (UNAVAILABLE) too, so the stop waits until the replies are acknowledged and no request
        // has come for a quiet spell, both at once (bounded).
        let deadline = ContinuousClock.now + .seconds(5)
        var settled = false
        while !settled, ContinuousClock.now < deadline {
            guard await client.waitUntilAcknowledged(timeout: deadline - .now) else { break }
            while !intake.isIdle(quiet: .milliseconds(100)), ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(5)) }
            settled = client.unacknowledgedCount == 0 && intake.isIdle(quiet: .milliseconds(100))
        }
        if client.unacknowledgedCount > 0 {
            logger.warning("stopping with publishes the broker has not acknowledged", metadata: ["count": "\(client.unacknowledgedCount)"])
        }
        client.disconnect()
        client.finishMessages()
        poolClient?.finishMessages()
        logger.info("stopped")
    }

    /// Connects, retrying with exponential backoff; a graceful shutdown (SIGTERM) stops the retries at once, so the
    /// worker stops promptly even while the broker is unreachable.
    private func connectWithBackoff(_ client: MQTTClient) async throws {
        try await cancelWhenGracefulShutdown { try await self.retryConnecting(client) }
    }

    private func retryConnecting(_ client: MQTTClient) async throws {
        var delay = Duration.milliseconds(250)
        while true {
            try Task.checkCancellation()
            do {
                try await client.connect()
                return
            } catch {
                logger.warning("cannot connect to the broker; retrying", metadata: ["error": "\(error)", "in": "\(delay)"])
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(30))
            }
        }
    }

    private func publishStatus(_ state: String) async throws {
        let status = Self.status(state, configuration: configuration, startedAt: startedAt, holdings: await holdings())
        try client.publish(topics.status, payload: status.json(), qos: 1, retain: true)
    }
}
