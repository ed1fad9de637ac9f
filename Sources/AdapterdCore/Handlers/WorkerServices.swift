import AdapterdClient
import AdapterEngine
import AdapterFormats
import AdapterRuntime
import AdapterTraining
import Foundation
import Logging
import Metrics
import MQTTRPC

/// What the worker's handlers share: the engine and its scheduler, the adapter lifecycle, the push inbox,
/// counters, metrics and the event feed. Needs no broker: handlers built on it can be called directly.
public struct WorkerServices: Sendable {
    public let configuration: WorkerConfiguration
    public let engine: InferenceEngine
    let executor: BatchExecutor
    public let registry: AdapterRegistry
    let pushes: PushInbox
    let rolloutGuard: RolloutGuard
    /// Decides each request's adapter and version, and hands out leases on them.
    public let resolver: AdapterResolver
    public let stats: WorkerStats
    public let metrics: WorkerMetrics
    /// Trainings of new versions on the worker.
    public let training: TrainingJobs
    /// The worker's part in federated runs (in the same training slot).
    public let federated: FederatedRounds
    /// SHA-256 of the base model's `model.safetensors`.
    public let baseFingerprint: String
    /// Shadow comparisons of newly activated versions with the ones they replaced.
    let shadows = ShadowComparer()
    /// Sends an adapter lifecycle event out (the worker's events topic).
    private let publishEvent: @Sendable (AdapterEvent) -> Void
    let logger: Logger
    let startedAt: Date

    /// Loads the base model and opens the adapter store for `configuration`; lifecycle events go to
    /// `publishEvent` (and into the metrics).
    public init(
        configuration: WorkerConfiguration, logger: Logger, metricsFactory: MetricsFactory = MetricsSystem.factory, startedAt: Date = Date(),
        publishEvent: @escaping @Sendable (AdapterEvent) -> Void
    ) throws {
        self.configuration = configuration
        self.logger = logger
        self.startedAt = startedAt
        self.publishEvent = publishEvent
        ExecutionRuntime.configure(path: configuration.kernelPath)
        engine = try InferenceEngine(
            modelDirectory: configuration.modelDirectory, precision: configuration.precision,
            path: configuration.kernelPath ?? .detected, labelCheckFactor: configuration.labelCheckFactor,
            mergeBytes: configuration.mergeMaxBytes)
        metrics = WorkerMetrics(
            factory: metricsFactory,
            engine: MetricsSnapshot.Engine(precision: engine.precision.rawValue, kernelPath: engine.path.description))
        // The fingerprint ties every registered adapter to the exact base weights it was validated against.
        let fingerprint = try AdapterDigest.sha256(ofFile: configuration.modelDirectory + "/model.safetensors")
        baseFingerprint = fingerprint
        let modelName = URL(fileURLWithPath: configuration.modelDirectory).standardizedFileURL.lastPathComponent
        let executor = BatchExecutor(engine: engine, maxBatch: configuration.maxBatch, batchSizes: metrics.batchRecorder)
        self.executor = executor
        let metrics = metrics
        /// Every lifecycle event goes out on the events topic and into the dashboard's recent events.
        let publish: @Sendable (AdapterEvent) -> Void = { event in
            publishEvent(event)
            // Progress reports are for whoever follows the events topic, not the dashboard's recent events.
            if event.training == nil { Task { await metrics.recordEvent(event) } }
        }
        registry = AdapterRegistry(
            engine: engine, store: try AdapterStore(dataDirectory: configuration.dataDirectory), baseFingerprint: fingerprint,
            cacheBytes: configuration.cacheMaxBytes, baseModelNames: configuration.baseModelNames + [modelName],
            maxVersions: configuration.maxVersions,
            waitForServingGap: { executor.waitForGap(atMost: .milliseconds(50)) },
            events: { publish(AdapterEvent($0)) })
        let trusted: TrustedKeys
        do {
            trusted = try TrustedKeys(configuration.trustedKeys)
        } catch {
            throw RPCError(.invalidArgument, error.description)
        }
        pushes = PushInbox(
            directory: configuration.dataDirectory + "/pushes", maxBytes: configuration.maxPushBytes, trusted: trusted,
            requireSigned: configuration.requireSigned, staleAfter: Double(configuration.pushExpiry.components.seconds),
            pieces: PieceIndex(adaptersDirectory: configuration.dataDirectory + "/adapters"))
        let rolloutGuard = RolloutGuard(policy: configuration.guardPolicy)
        self.rolloutGuard = rolloutGuard
        stats = WorkerStats()
        let engine = engine
        resolver = AdapterResolver(
            registry: registry, rolloutGuard: rolloutGuard, allowExplicitAdapter: configuration.allowExplicitAdapter,
            defaultAdapter: configuration.defaultAdapter, affinityTTL: configuration.affinityTTL,
            features: { rows, layers in
                // Stages over the embeddings alone are a table lookup: they run on the request's task. Deeper
                // stages join the engine thread's next batch, with every other request waiting for routing.
                if layers == 0 { return try engine.features(encoded: rows, layers: 0) }
                guard let features = await executor.features(rows, layers: layers) else { throw RegistryError.engineStopping }
                return features
            },
            warn: { message, metadata in logger.warning("\(message)", metadata: metadata.mapValues { .string($0) }) })
        // Trained adapters declare the base model as the configuration names it (a hub id whose last part is the
        // model directory's name), else by the directory's name: either way one this worker accepts.
        let servedModel = configuration.baseModelNames.first { $0.split(separator: "/").last.map { $0.lowercased() == modelName.lowercased() } ?? false } ?? modelName
        training = TrainingJobs(
            registry: registry, model: engine.model, baseModel: servedModel, logger: logger,
            waitWhileServing: { stop in executor.waitForGap(quiet: .milliseconds(20), unless: stop) }, events: publish)
        federated = FederatedRounds(
            training: training, registry: registry, model: engine.model, baseFingerprint: fingerprint,
            // A global adapter is held in memory while it arrives: at most 64 MiB (MiniLM's, r 8 on query and value
            // with its head, is 300 KB).
            memoryBudget: configuration.trainingMemoryBudgetBytes, maxBytes: Int(clamping: min(configuration.maxPushBytes, 64 << 20)),
            timeLimit: .seconds(configuration.trainingMaxSeconds), logger: logger, events: publish)
    }

    /// The inference method, served on the `…/infer/…` topics.
    public var inferenceMethod: RPCMethod { InferenceHandlers(services: self).method }

    /// Every control method, grouped by concern.
    public var controlMethods: MethodTable {
        MethodTable(
            AdapterHandlers(services: self).methods + RoutingHandlers(services: self).methods
                + RolloutHandlers(services: self).methods + PushHandlers(services: self).methods
                + StatusHandlers(services: self).methods + TrainingHandlers(services: self).methods
                + FederatedHandlers(services: self).methods)
    }

    /// Stops the engine thread (after the last request). Stop trainings first (`training.shutdown()`).
    public func shutdown() {
        shadows.finish()
        executor.shutdown()
    }

    /// Runs the queued shadow comparisons until `shutdown`: each on the replaced version, on one idle-priority thread
    /// between requests, its figures recorded under the new version.
    func runShadowComparisons() async {
        let engine = engine, executor = executor
        await shadows.run { job in
            guard let entry = try? await registry.resolve(name: job.name, version: job.against),
                  let adapter = try? await registry.cache.acquire(entry.key) else {
                await metrics.recordShadow(name: job.name, version: job.version, against: job.against, comparison: nil)
                return
            }
            let input = EncodedInput(ids: job.ids, adapter: adapter, typeIds: job.typeIds)
            let before = await BackgroundThread.run {
                try? engine.runOnCallingThread(encoded: [input], pause: {
                    BackgroundThread.withoutYieldTimer { executor.waitForGap(atMost: .milliseconds(50)) }
                    BackgroundThread.yieldNow()
                }).first
            }
            await registry.cache.release(entry.key)
            let comparison = before.flatMap { ShadowComparer.comparison(after: job.output, before: $0) }
            await metrics.recordShadow(name: job.name, version: job.version, against: job.against, comparison: comparison)
        }
    }

    /// Merges the adapters whose uniform batches asked for it (`MergeBudget.requests`) until `finishRequests`, each
    /// on one idle-priority thread between requests, so that their next batches run at the base model's cost.
    func runMerges() async {
        guard let budget = engine.mergeBudget else { return }
        let engine = engine, executor = executor, logger = logger
        for await request in budget.requests {
            guard let adapter = request.adapter else {
                budget.withdraw(request)
                continue
            }
            let merged = await BackgroundThread.run {
                engine.prepareMerged(adapter, pause: {
                    BackgroundThread.withoutYieldTimer { executor.waitForGap(atMost: .milliseconds(50)) }
                    BackgroundThread.yieldNow()
                })
            }
            logger.debug(
                merged ? "adapter merged into its layers" : "adapter not merged: the merge budget is held by adapters in use",
                metadata: ["adapter": "\(adapter.name)", "mergedBytes": "\(budget.bytes)", "budget": "\(budget.limit)"])
        }
    }

    /// Publishes `event` about (name, version), sent by the request's actor, and counts it in the metrics: for what
    /// happens before the registry is reached (a push refused for its signature or digest).
    func publishEvent(_ event: LifecycleAction, name: String, version: String, context: RPCContext, reason: String) {
        let event = AdapterEvent(event: event, name: name, version: version, actor: context.actor, reason: reason)
        publishEvent(event)
        let metrics = metrics
        Task { await metrics.recordEvent(event) }
    }
}

extension AdapterEvent {
    /// The wire form of a registry's lifecycle event.
    init(_ event: LifecycleEvent) {
        self.init(event: event.action, name: event.name, version: event.version, actor: event.actor, reason: event.reason)
    }
}
