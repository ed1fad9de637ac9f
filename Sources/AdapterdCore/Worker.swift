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
    public let stats = WorkerStats()
    let executor: BatchExecutor
    let client: MQTTClient
    let replies = ReplyCache()
    let intake = IntakeTracker()
    let rolloutGuard: RolloutGuard
    let pushes: PushInbox
    /// Figures for the metrics topic, Prometheus and the dashboard.
    public let metrics: WorkerMetrics
    /// A second connection for the pool's shared subscription (see `run`).
    let poolClient: MQTTClient?
    private let readiness = Readiness()
    let logger: Logger
    let startedAt = Date()

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
        ExecutionRuntime.configure(path: configuration.kernelPath)
        engine = try InferenceEngine(
            modelDirectory: configuration.modelDirectory, precision: configuration.precision,
            path: configuration.kernelPath ?? .detected)
        metrics = WorkerMetrics(
            factory: metricsFactory,
            engine: MetricsSnapshot.Engine(precision: engine.precision.rawValue, kernelPath: engine.path.description))
        // The fingerprint ties every registered adapter to the exact base weights it was validated against.
        let fingerprint = try AdapterDigest.sha256(ofFile: configuration.modelDirectory + "/model.safetensors")
        let modelName = URL(fileURLWithPath: configuration.modelDirectory).standardizedFileURL.lastPathComponent
        let executor = BatchExecutor(engine: engine, maxBatch: configuration.maxBatch, batchSizes: metrics.batchRecorder)
        self.executor = executor
        registry = AdapterRegistry(
            engine: engine, store: try AdapterStore(dataDirectory: configuration.dataDirectory), baseFingerprint: fingerprint,
            cacheBytes: configuration.cacheMaxBytes, baseModelNames: configuration.baseModelNames + [modelName],
            smoke: { await executor.run($0) })
        let trusted: TrustedKeys
        do {
            trusted = try TrustedKeys(configuration.trustedKeys)
        } catch {
            throw RPCError(.invalidArgument, error.description)
        }
        pushes = PushInbox(
            directory: configuration.dataDirectory + "/pushes", maxBytes: configuration.maxPushBytes, trusted: trusted,
            requireSigned: configuration.requireSigned, staleAfter: Double(configuration.pushExpiry.components.seconds))
        rolloutGuard = RolloutGuard(policy: configuration.guardPolicy)
        var options = try MQTTOptions.parse(url: configuration.brokerURL, clientID: "adapterd-" + configuration.workerID)
        options.protocolVersion = configuration.protocolVersion == .v5 ? .v5 : .v311
        options.cleanStart = false
        options.sessionExpiry = configuration.sessionExpiry
        options.receiveMaximum = configuration.receiveMaximum
        options.username = configuration.username
        options.password = configuration.password
        if let ca = configuration.tlsCAFile {
            options.tls = MQTTOptions.TLS(caFile: ca, certFile: configuration.tlsCertFile, keyFile: configuration.tlsKeyFile)
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
    }

    static func status(_ state: String, configuration: WorkerConfiguration, startedAt: Date) -> WorkerStatus {
        WorkerStatus(
            state: state, worker: configuration.workerID, version: version,
            model: URL(fileURLWithPath: configuration.modelDirectory).lastPathComponent,
            startedAt: ISO8601DateFormatter().string(from: startedAt), precision: configuration.precision.rawValue,
            kernelPath: min(configuration.kernelPath ?? .detected, .detected).description)
    }

    public func run() async throws {
        for skipped in try await registry.restore() {
            logger.warning("registered adapter not restored", metadata: ["name": "\(skipped.name)", "version": "\(skipped.version)", "reason": "\(skipped.reason)"])
        }
        for stale in await pushes.pruneStale(olderThan: Double(configuration.pushExpiry.components.seconds)) {
            logger.notice("removed an unfinished push", metadata: ["push": "\(stale)"])
        }
        for item in configuration.preload {
            let entry = try await registry.load(name: item.name, version: item.version, path: item.path, actor: "config")
            logger.info("loaded adapter", metadata: ["name": "\(entry.name)", "version": "\(entry.version)", "bytes": "\(entry.record.sizeBytes)"])
        }
        try await connectWithBackoff(client)
        for filter in [topics.inferFilter, topics.controlFilter] + [topics.poolControlFilter].compactMap({ $0 }) {
            try client.subscribe(filter, qos: 1)
        }
        if let poolClient, let filter = topics.poolInferFilter {
            try poolClient.subscribe(filter, qos: 1)
            try await connectWithBackoff(poolClient)
        }
        try publishStatus("online")
        readiness.set(true)
        logger.info("serving", metadata: ["worker": "\(configuration.workerID)", "broker": "\(configuration.brokerURL)", "pool": "\(configuration.pool ?? "-")"])

        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.reportMetrics() }
                for stream in [client.messages] + [poolClient?.messages].compactMap({ $0 }) {
                    group.addTask {
                        await withDiscardingTaskGroup { requests in
                            for await message in stream {
                                self.intake.received()
                                requests.addTask {
                                    await self.handle(message)
                                    self.intake.answered()
                                }
                            }
                        }
                    }
                }
            }
        } onGracefulShutdown: {
            Task { await self.drain() }
        }
        executor.shutdown()
    }

    /// Whether the worker is serving: connected to the broker with the model loaded (for `/readyz`).
    public var isReady: Bool { readiness.value && client.isConnected }

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
            cache: await registry.cache.counters, cacheBudget: configuration.cacheMaxBytes, registered: registered)
    }

    /// Stop taking requests, wait for those in flight, go offline, disconnect.
    func drain() async {
        await stats.startDraining()
        readiness.set(false)
        // Leave the pool first: from now on the broker hands pool requests to the other workers.
        poolClient?.disconnect()
        logger.info("draining")
        // Everything taken from the stream must be answered before the connection closes; a short quiet period
        // lets requests the broker already sent arrive (and get their UNAVAILABLE) instead of being lost.
        while !intake.isIdle(quiet: .milliseconds(100)) { try? await Task.sleep(for: .milliseconds(5)) }
        await registry.flushPins()
        try? publishStatus("offline")
        client.disconnect()
        client.finishMessages()
        poolClient?.finishMessages()
        logger.info("stopped")
    }

    private func connectWithBackoff(_ client: MQTTClient) async throws {
        var delay = Duration.milliseconds(250)
        while true {
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

    private func publishStatus(_ state: String) throws {
        try client.publish(topics.status, payload: Self.status(state, configuration: configuration, startedAt: startedAt).json(), qos: 1, retain: true)
    }

    // MARK: Requests

    /// A reply type for failures that precede knowing the method's own reply type.
    typealias ErrorReply = Adapterd_V1_UnloadAdapterReply

    func handle(_ message: MQTTMessage) async {
        guard let route = topics.route(message.topic) else { return }
        guard let encoding = RPCEncoding.detect(contentType: message.properties.contentType, payload: message.payload) else {
            let failure = RPCError(.invalidArgument, "content type '\(message.properties.contentType ?? "")' is not supported; use application/json or application/x-protobuf")
            await serve(message, encoding: .json, Adapterd_V1_GetStatusRequest.self, ErrorReply.self, rejection: failure) { _ in ErrorReply() }
            return
        }
        switch route {
        case .infer(let context):
            await serve(message, encoding: encoding, Adapterd_V1_InferRequest.self, Adapterd_V1_InferReply.self, resultsContext: context) { request in
                try await self.infer(request, message: message, context: context)
            }
        case .control("LoadAdapter"):
            await serve(message, encoding: encoding, Adapterd_V1_LoadAdapterRequest.self, Adapterd_V1_LoadAdapterReply.self) { request in
                let entry: AdapterRegistry.Entry
                do {
                    entry = try await self.registry.load(name: request.name, version: request.version, path: request.path, actor: Self.actor(message))
                } catch let error as RPCError where error.status == .failedPrecondition {
                    self.publishEvent("refused", name: request.name, version: request.version, message: message, reason: error.message)
                    throw error
                }
                self.publishEvent("loaded", name: entry.name, version: entry.version, message: message, reason: "state \(entry.record.state.rawValue)")
                self.logger.info("loaded adapter", metadata: ["name": "\(entry.name)", "version": "\(entry.version)", "state": "\(entry.record.state.rawValue)"])
                var reply = Adapterd_V1_LoadAdapterReply()
                reply.adapter = Self.info(entry)
                return reply
            }
        case .control("UnloadAdapter"):
            await serve(message, encoding: encoding, Adapterd_V1_UnloadAdapterRequest.self, Adapterd_V1_UnloadAdapterReply.self) { request in
                try await self.registry.unload(name: request.name, version: request.version, actor: Self.actor(message))
                self.publishEvent("unloaded", name: request.name, version: request.version, message: message, reason: "")
                return Adapterd_V1_UnloadAdapterReply()
            }
        case .control("ListAdapters"):
            await serve(message, encoding: encoding, Adapterd_V1_ListAdaptersRequest.self, Adapterd_V1_ListAdaptersReply.self) { _ in
                var reply = Adapterd_V1_ListAdaptersReply()
                reply.adapters = await self.registry.list().map(Self.info)
                return reply
            }
        case .control("GetStatus"):
            await serve(message, encoding: encoding, Adapterd_V1_GetStatusRequest.self, Adapterd_V1_GetStatusReply.self) { _ in
                await self.statusReply()
            }
        case .control("ActivateAdapter"):
            await serve(message, encoding: encoding, Adapterd_V1_ActivateAdapterRequest.self, Adapterd_V1_ActivateAdapterReply.self) { request in
                let entry = try await self.registry.activate(name: request.name, version: request.version, actor: Self.actor(message), reason: request.reason)
                self.publishEvent("activated", name: entry.name, version: entry.version, message: message, reason: request.reason)
                self.logger.info("activated adapter", metadata: ["name": "\(entry.name)", "version": "\(entry.version)"])
                var reply = Adapterd_V1_ActivateAdapterReply()
                reply.adapter = Self.info(entry)
                return reply
            }
        case .control("Rollback"):
            await serve(message, encoding: encoding, Adapterd_V1_RollbackRequest.self, Adapterd_V1_RollbackReply.self) { request in
                let entry = try await self.registry.rollback(name: request.name, actor: Self.actor(message), reason: request.reason)
                self.publishEvent("rolled back", name: entry.name, version: entry.version, message: message, reason: request.reason)
                self.logger.notice("rolled back adapter", metadata: ["name": "\(entry.name)", "version": "\(entry.version)"])
                var reply = Adapterd_V1_RollbackReply()
                reply.adapter = Self.info(entry)
                return reply
            }
        case .control("History"):
            await serve(message, encoding: encoding, Adapterd_V1_HistoryRequest.self, Adapterd_V1_HistoryReply.self) { request in
                var reply = Adapterd_V1_HistoryReply()
                let formatter = ISO8601DateFormatter()
                reply.events = try await self.registry.history(name: request.name).map { record in
                    var event = Adapterd_V1_HistoryEvent()
                    event.version = record.version
                    event.action = record.action
                    event.actor = record.actor
                    event.reason = record.reason
                    event.at = formatter.string(from: record.at)
                    return event
                }
                return reply
            }
        case .control("SetRoute"):
            await serve(message, encoding: encoding, Adapterd_V1_SetRouteRequest.self, Adapterd_V1_SetRouteReply.self) { request in
                let route = RouteRecord(
                    name: request.name, topic: request.topic, sensorType: request.sensorType, metadata: request.metadata,
                    adapter: request.adapter, priority: Int(request.priority))
                try await self.registry.setRoute(route)
                var reply = Adapterd_V1_SetRouteReply()
                reply.route = Self.route(route)
                return reply
            }
        case .control("DeleteRoute"):
            await serve(message, encoding: encoding, Adapterd_V1_DeleteRouteRequest.self, Adapterd_V1_DeleteRouteReply.self) { request in
                try await self.registry.deleteRoute(name: request.name)
                return Adapterd_V1_DeleteRouteReply()
            }
        case .control("ListRoutes"):
            await serve(message, encoding: encoding, Adapterd_V1_ListRoutesRequest.self, Adapterd_V1_ListRoutesReply.self) { _ in
                var reply = Adapterd_V1_ListRoutesReply()
                reply.routes = await self.registry.routes.map(Self.route)
                return reply
            }
        case .control("ClearSession"):
            await serve(message, encoding: encoding, Adapterd_V1_ClearSessionRequest.self, Adapterd_V1_ClearSessionReply.self) { request in
                guard !request.session.isEmpty else { throw RPCError(.invalidArgument, "field 'session' is required") }
                var reply = Adapterd_V1_ClearSessionReply()
                reply.cleared = Int32(try await self.registry.clear(session: request.session))
                return reply
            }
        case .control("SetRollout"):
            await serve(message, encoding: encoding, Adapterd_V1_SetRolloutRequest.self, Adapterd_V1_SetRolloutReply.self) { request in
                try await self.registry.setRollout(name: request.name, splits: request.splits.mapValues(Int.init))
                await self.rolloutGuard.reset(name: request.name)
                self.logger.info("rollout", metadata: ["name": "\(request.name)", "splits": "\(request.splits)"])
                return Adapterd_V1_SetRolloutReply()
            }
        case .control("GetAdapter"):
            await serve(message, encoding: encoding, Adapterd_V1_GetAdapterRequest.self, Adapterd_V1_GetAdapterReply.self) { request in
                let active = try await self.registry.resolve(name: request.name, version: "")
                var reply = Adapterd_V1_GetAdapterReply()
                reply.versions = await self.registry.list().filter { $0.name == request.name }.map(Self.info)
                reply.active = active.version
                reply.splits = Dictionary(uniqueKeysWithValues: (await self.registry.rollouts[request.name]?.splits ?? []).map { ($0.version, Int32($0.weight)) })
                reply.pinned = await self.registry.cache.isPinned(request.name)
                return reply
            }
        case .control("PushAdapter"):
            await serve(message, encoding: encoding, Adapterd_V1_PushAdapterRequest.self, Adapterd_V1_PushAdapterReply.self) { request in
                try await self.push(request, message: message)
            }
        case .control(let method) where method == "PinAdapter" || method == "UnpinAdapter":
            await serve(message, encoding: encoding, Adapterd_V1_PinAdapterRequest.self, Adapterd_V1_PinAdapterReply.self) { request in
                _ = try await self.registry.resolve(name: request.name, version: "")
                if method == "PinAdapter" {
                    await self.registry.cache.pin(request.name)
                } else {
                    await self.registry.cache.unpin(request.name)
                }
                return Adapterd_V1_PinAdapterReply()
            }
        case .control(let method):
            let failure = RPCError(.invalidArgument, "unknown method '\(method)'; methods: LoadAdapter, UnloadAdapter, ListAdapters, GetStatus, ActivateAdapter, Rollback, History, SetRoute, DeleteRoute, ListRoutes, ClearSession, SetRollout, PinAdapter, UnpinAdapter, GetAdapter, PushAdapter")
            await serve(message, encoding: encoding, Adapterd_V1_GetStatusRequest.self, ErrorReply.self, rejection: failure) { _ in ErrorReply() }
        }
    }

    /// Decodes, de-duplicates, checks expiry, executes and replies: the RPC rules every method shares.
    func serve<Request: RPCRequestMessage, Reply: RPCReplyMessage>(
        _ message: MQTTMessage, encoding: RPCEncoding, _ requestType: Request.Type, _ replyType: Reply.Type,
        resultsContext: [String]? = nil, rejection: RPCError? = nil,
        execute: @escaping @Sendable (Request) async throws -> Reply
    ) async {
        var request: Request?
        var failure = rejection
        if failure == nil {
            do {
                request = try RPCCodec.decode(Request.self, from: message.payload, encoding: encoding)
            } catch {
                failure = error
            }
        }
        let address = ReplyAddress.of(message, replyTo: request?.replyTo, correlationID: request?.correlationID)
        let expiry = message.properties.messageExpiry.map { Duration.seconds(Int64($0)) }
        let deadline = expiry.map { message.receivedAt + $0 }
        let decoded = request
        let decodeFailure = failure
        let compute: @Sendable () async -> CachedReply = {
            var reply: Reply
            if let decodeFailure {
                await self.stats.reject()
                reply = Reply(failure: decodeFailure)
            } else if let deadline, ContinuousClock.now >= deadline {
                await self.stats.reject()
                reply = Reply(failure: RPCError(.deadlineExceeded, "the request expired before it could run"))
            } else if await self.stats.draining {
                await self.stats.reject()
                reply = Reply(failure: RPCError(.unavailable, "worker '\(self.configuration.workerID)' is shutting down; retry"))
            } else {
                await self.stats.begin()
                do {
                    reply = try await execute(decoded!)
                    reply.status = .ok
                } catch let error as RPCError {
                    reply = Reply(failure: error)
                } catch {
                    reply = Reply(failure: RPCError(.internal, "\(error)"))
                }
                await self.stats.end(status: reply.status.rawValue)
            }
            if let id = address?.correlationID, !id.isEmpty { reply.correlationID = id }
            return CachedReply(payload: RPCCodec.encode(reply, encoding: encoding), status: RPCStatus(reply.status))
        }
        let reply: CachedReply
        if let key = address?.duplicateKey {
            let window = max(configuration.duplicateWindow, expiry ?? .zero)
            reply = await replies.reply(for: key, window: window, compute: compute).reply
        } else {
            reply = await compute()
        }
        if reply.status != .ok {
            logger.debug("request failed", metadata: ["topic": "\(message.topic)", "status": "\(reply.status.name)"])
        }
        if let address {
            // `worker` tells replies apart when one request reached several workers (pool control).
            var properties = MQTTProperties(
                contentType: encoding.contentType,
                userProperties: [MQTTUserProperty("status", reply.status.name), MQTTUserProperty("worker", configuration.workerID)])
            if address.usesProperties { properties.correlationData = address.correlationData }
            publish(address.topic, reply.payload, properties)
        }
        if let resultsContext, configuration.publishResults {
            publish(topics.results(context: resultsContext), reply.payload, MQTTProperties(contentType: encoding.contentType, userProperties: [MQTTUserProperty("status", reply.status.name)]))
        }
    }

    /// Feeds the rollout guard and ends a rollout whose canary went bad.
    func guardRollout(_ entry: AdapterRegistry.Entry, ok: Bool, since: ContinuousClock.Instant) async {
        guard let rollout = await registry.rollouts[entry.name] else { return }
        let elapsed = ContinuousClock.now - since
        await rolloutGuard.record(entry.key, ok: ok, latencyMs: elapsed.inMilliseconds)
        guard let active = try? await registry.resolve(name: entry.name, version: ""),
              let verdict = await rolloutGuard.verdict(rollout, stable: active.version) else { return }
        do {
            try await registry.abortRollout(name: entry.name, canary: verdict.canary, reason: verdict.reason)
            await rolloutGuard.reset(name: entry.name)
            logger.warning("canary rolled back", metadata: ["name": "\(entry.name)", "version": "\(verdict.canary)", "reason": "\(verdict.reason)"])
            publish(AdapterEvent(event: "rolled back", name: entry.name, version: verdict.canary, actor: "guard", reason: verdict.reason))
        } catch {
            logger.error("cannot roll back canary", metadata: ["name": "\(entry.name)", "error": "\(error)"])
        }
    }

    /// Publishes an adapter lifecycle event for dashboards and fleet controllers.
    func publishEvent(_ event: String, name: String, version: String, message: MQTTMessage, reason: String) {
        publish(AdapterEvent(event: event, name: name, version: version, actor: Self.actor(message), reason: reason))
    }

    func publish(_ event: AdapterEvent) {
        publish(topics.events, event.json(), MQTTProperties(contentType: "application/json"))
        Task { await metrics.recordEvent(event) }
    }

    private func publish(_ topic: String, _ payload: [UInt8], _ properties: MQTTProperties) {
        do {
            try client.publish(topic, payload: payload, qos: 1, properties: properties)
        } catch {
            logger.error("cannot publish a reply", metadata: ["topic": "\(topic)", "error": "\(error)"])
        }
    }

    /// Runs an inference request and records its outcome under the adapter version it resolved to.
    func infer(_ request: Adapterd_V1_InferRequest, message: MQTTMessage, context: [String]) async throws -> Adapterd_V1_InferReply {
        var resolved: AdapterRegistry.Entry?
        do {
            let reply = try await runInference(request, message: message, context: context, resolved: &resolved)
            await metrics.recordInference(name: reply.adapter, version: reply.version, status: .ok, latency: ContinuousClock.now - message.receivedAt)
            return reply
        } catch {
            let status = (error as? RPCError)?.status ?? .internal
            // Names that never resolved are not adapters: one bucket for them keeps label cardinality bounded
            // whatever clients send.
            let name = resolved?.name ?? (request.adapter.isEmpty ? "" : WorkerMetrics.unresolved)
            await metrics.recordInference(name: name, version: resolved?.version ?? "", status: status, latency: ContinuousClock.now - message.receivedAt)
            throw error
        }
    }

    func runInference(_ request: Adapterd_V1_InferRequest, message: MQTTMessage, context: [String], resolved: inout AdapterRegistry.Entry?) async throws -> Adapterd_V1_InferReply {
        guard request.hasText else { throw RPCError(.invalidArgument, "field 'text' is required") }
        var entry: AdapterRegistry.Entry?
        if !request.adapter.isEmpty {
            guard configuration.allowExplicitAdapter else {
                throw RPCError(.permissionDenied, "this worker routes requests itself; remove 'adapter' from the request")
            }
            entry = request.version.isEmpty
                ? try await registry.resolve(name: request.adapter, session: request.session, stickyKey: context.joined(separator: "/"), ttl: configuration.affinityTTL)
                : try await registry.resolve(name: request.adapter, version: request.version)
        } else if !request.version.isEmpty {
            throw RPCError(.invalidArgument, "field 'version' needs 'adapter'")
        } else if let name = await registry.router.select(topic: message.topic, context: context, metadata: request.metadata)?.adapter
                    ?? configuration.defaultAdapter {
            entry = try await registry.resolve(name: name, session: request.session, stickyKey: context.joined(separator: "/"), ttl: configuration.affinityTTL)
        }
        resolved = entry
        let encoded = engine.encode(request.text)
        let deadline = message.properties.messageExpiry.map { message.receivedAt + .seconds(Int64($0)) }
        var adapter: LoRAAdapter?
        if let entry {
            do {
                adapter = try await registry.cache.acquire(entry.key)
            } catch {
                throw RPCError(.unavailable, "adapter '\(entry.name)' \(entry.version) could not be loaded: \(error)")
            }
        }
        let result = await executor.run(EncodedInput(ids: encoded.ids, adapter: adapter), deadline: deadline)
        if let entry { await registry.cache.release(entry.key) }
        if let entry { await guardRollout(entry, ok: result != nil, since: message.receivedAt) }
        guard let output = result else {
            throw RPCError(.deadlineExceeded, "the request expired while it waited for the engine")
        }
        var reply = Adapterd_V1_InferReply()
        reply.worker = configuration.workerID
        reply.tokens = Int32(encoded.ids.count)
        if let entry {
            reply.adapter = entry.name
            reply.version = entry.version
        }
        switch output {
        case .classification(let logits, _, let label):
            reply.label = label
            reply.logits = logits
        case .embedding(let values):
            reply.embedding = values
        }
        let elapsed = ContinuousClock.now - message.receivedAt
        reply.latencyMs = Float(elapsed.inMilliseconds)
        return reply
    }

    func statusReply() async -> Adapterd_V1_GetStatusReply {
        var reply = Adapterd_V1_GetStatusReply()
        let status = Self.status("online", configuration: configuration, startedAt: startedAt)
        reply.worker = status.worker
        reply.state = await stats.draining ? "draining" : "online"
        reply.version = status.version
        reply.model = status.model
        reply.startedAt = status.startedAt
        reply.uptimeSeconds = Date().timeIntervalSince(startedAt)
        reply.requestsTotal = Int64(await stats.executed)
        reply.requestsFailed = Int64(await stats.failed)
        reply.inFlight = Int32(await stats.inFlight)
        reply.adaptersLoaded = Int32(await registry.count)
        let cache = await registry.cache.counters
        reply.cacheBytes = Int64(cache.bytes)
        reply.cacheMaxBytes = Int64(configuration.cacheMaxBytes)
        reply.cacheHits = Int64(cache.hits)
        reply.cacheMisses = Int64(cache.misses)
        reply.cacheEvictions = Int64(cache.evictions)
        reply.precision = engine.precision.rawValue
        reply.kernelPath = engine.path.description
        return reply
    }

    static func info(_ entry: AdapterRegistry.Entry) -> Adapterd_V1_AdapterInfo {
        var info = Adapterd_V1_AdapterInfo()
        info.name = entry.name
        info.version = entry.version
        info.state = entry.record.state.rawValue
        info.bytes = Int64(entry.record.sizeBytes)
        info.sha256 = entry.sha256
        info.rank = Int32(entry.record.rank)
        info.targets = entry.record.targets.split(separator: ",").map(String.init)
        info.labels = entry.record.labels.split(separator: "\n").map(String.init)
        info.path = entry.path
        return info
    }

    static func route(_ record: RouteRecord) -> Adapterd_V1_Route {
        var route = Adapterd_V1_Route()
        route.name = record.name
        route.topic = record.topic
        route.sensorType = record.sensorType
        route.metadata = record.metadataPairs
        route.adapter = record.adapter
        route.priority = Int32(record.priority)
        return route
    }

    /// Who sent a control request, for the audit trail: the MQTT 5 user property `actor`, else "mqtt".
    static func actor(_ message: MQTTMessage) -> String {
        message.properties.userProperty("actor") ?? "mqtt"
    }
}
