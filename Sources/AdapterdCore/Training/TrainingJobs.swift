import AdapterdClient
import AdapterEngine
import AdapterFormats
import AdapterRuntime
import AdapterTraining
import Foundation
import Logging
import MQTTRPC

/// The worker's trainings: at most one at a time (it takes one core), run on an idle-priority thread of its own,
/// reported on the events topic, cancellable, and staged as a new version when it finishes. A worker stopped or
/// killed mid-training stages nothing: the result is written and loaded only at the end, and what a killed
/// training left in `{data}/training` is removed at start.
public actor TrainingJobs {
    /// Why a training was not started or cancelled.
    public enum Refusal: Error, CustomStringConvertible, Sendable, Equatable {
        case busy(name: String, version: String)
        case exists(name: String, version: String)
        case notTraining(name: String, version: String)

        public var description: String {
            switch self {
            case let .busy(name, version):
                return "the worker is already training '\(name)' \(version); one training runs at a time (cancel it with CancelTraining)"
            case let .exists(name, version):
                return "'\(name)' \(version) is already registered: train a new version"
            case let .notTraining(name, version):
                return "no training of '\(name)' \(version) is running"
            }
        }
    }

    /// What one training does once it has run.
    public struct Job: Sendable {
        public var name: String
        public var version: String
        public var examples: [TrainingExample]
        public var eval: [TrainingExample]
        public var labels: [String]
        public var options: Trainer.Options
        /// Longest the training may run; past it, it stops and stages nothing.
        public var timeLimit: Duration = .seconds(3600)
        public var activate: Bool
        /// Who asked, for the audit trail and the events.
        public var actor: String
        /// How many of `examples` came from stored feedback.
        public var fromFeedback: Int
    }

    /// Set from a request's task, read by the training thread between steps.
    final class Cancellation: @unchecked Sendable {
        private let lock = NSLock()
        private var cancelled = false
        var isCancelled: Bool { lock.withLock { cancelled } }
        func cancel() { lock.withLock { cancelled = true } }
    }

    private let registry: AdapterRegistry
    private let model: BertModel
    /// Blocks while the engine serves requests now or did a moment ago, until the given condition holds.
    private let waitWhileServing: @Sendable (_ stop: () -> Bool) -> Void
    private let events: @Sendable (AdapterEvent) -> Void
    private let logger: Logger
    /// The base model's name the trained adapters declare: the one this worker serves, so it accepts them.
    private let baseModel: String
    private var running: (name: String, version: String, cancellation: Cancellation, task: Task<Void, Never>)?

    /// Trainings over `model` (named `baseModel` in the adapters they write) that stage into `registry` and report
    /// to `events`. A training waits between layers in `waitWhileServing` (which returns early once its argument
    /// holds: the training was cancelled).
    public init(
        registry: AdapterRegistry, model: BertModel, baseModel: String, logger: Logger,
        waitWhileServing: @escaping @Sendable (_ stop: () -> Bool) -> Void = { _ in },
        events: @escaping @Sendable (AdapterEvent) -> Void
    ) {
        self.registry = registry
        // Between layers: wait for a gap in serving, then give up the CPU to any thread the scheduler queued behind
        // the training's (it runs without the yield timer, see `BackgroundThread.runDedicated`).
        self.waitWhileServing = { stop in
            waitWhileServing(stop)
            BackgroundThread.yieldNow()
        }
        self.model = model
        self.baseModel = baseModel
        self.logger = logger
        self.events = events
    }

    /// Where trainings write their result before it is staged.
    public static func directory(data: String) -> String { data + "/training" }

    /// Removes what trainings of a killed worker left behind (nothing of them was staged).
    public static func removeLeftovers(data: String) -> Bool {
        let path = directory(data: data)
        guard FileManager.default.fileExists(atPath: path) else { return false }
        return (try? FileManager.default.removeItem(atPath: path)) != nil
    }

    /// Starts `job`, unless a training is running or (name, version) exists.
    public func start(_ job: Job) async throws(Refusal) {
        if let running { throw .busy(name: running.name, version: running.version) }
        if (try? await registry.resolve(name: job.name, version: job.version)) != nil { throw .exists(name: job.name, version: job.version) }
        try start(name: job.name, version: job.version) { [registry, model, baseModel, events, logger, waitWhileServing] slot in
            await Self.run(
                job, cancellation: slot.cancellation, registry: registry, model: model, baseModel: baseModel, waitWhileServing: waitWhileServing,
                events: events, logger: logger)
        }
    }


    /// What other work in the training slot (a federated round) gets: whether it was cancelled, and the pause to
    /// take between layers while requests are served.
    public struct Slot: Sendable {
        let cancellation: Cancellation
        let waitWhileServing: @Sendable (_ stop: () -> Bool) -> Void

        /// Whether the work was cancelled (`cancel`, or the worker stopping).
        public var isCancelled: Bool { cancellation.isCancelled }

        /// Waits while the engine serves requests (returns early once cancelled).
        public func pause() { waitWhileServing { cancellation.isCancelled } }
    }

    /// Runs `work` as the worker's one training, labelled (name, version) for refusals and `cancel`: refused while
    /// another runs. `work` runs its training on a thread of its own and pauses through the slot.
    public func start(name: String, version: String, work: @escaping @Sendable (Slot) async -> Void) throws(Refusal) {
        if let running { throw .busy(name: running.name, version: running.version) }
        let cancellation = Cancellation()
        let slot = Slot(cancellation: cancellation, waitWhileServing: waitWhileServing)
        let task = Task {
            await work(slot)
            self.finished(name: name, version: version)
        }
        running = (name, version, cancellation, task)
    }

    /// Runs `body` on one idle-priority thread of its own, without the OpenMP team (serving keeps the cores), keeping
    /// its typed error: where every training of the worker runs.
    public static func onTrainingThread<T: Sendable>(
        name: String, _ body: @escaping @Sendable () throws(TrainingError) -> T
    ) async -> Result<T, TrainingError> {
        await BackgroundThread.runDedicated(name: name) { () -> Result<T, TrainingError> in
            ExecutionRuntime.onCallingThreadOnly { () -> Result<T, TrainingError> in
                do throws(TrainingError) {
                    return .success(try body())
                } catch {
                    return .failure(error)
                }
            }
        }
    }

    /// Cancels the training of (name, version); it stages nothing.
    public func cancel(name: String, version: String) throws(Refusal) {
        guard let running, running.name == name, running.version == version else { throw .notTraining(name: name, version: version) }
        running.cancellation.cancel()
    }

    /// Cancels any training and waits until it has stopped (a graceful stop).
    public func shutdown() async {
        guard let running else { return }
        running.cancellation.cancel()
        await running.task.value
    }

    /// Waits for the training running now, if any, to end.
    public func waitUntilIdle() async {
        await running?.task.value
    }

    private func finished(name: String, version: String) {
        if running?.name == name, running?.version == version { running = nil }
    }

    private static func run(
        _ job: Job, cancellation: Cancellation, registry: AdapterRegistry, model: BertModel, baseModel: String,
        waitWhileServing: @escaping @Sendable (_ stop: () -> Bool) -> Void, events: @escaping @Sendable (AdapterEvent) -> Void,
        logger: Logger
    ) async {
        @Sendable func event(_ kind: LifecycleAction, _ reason: String, _ training: AdapterEvent.Training? = nil) {
            events(AdapterEvent(event: kind, name: job.name, version: job.version, actor: job.actor, reason: reason, training: training))
        }
        let source = "\(job.examples.count) examples" + (job.fromFeedback > 0 ? " (\(job.fromFeedback) from feedback)" : "")
        event(.training, "started on \(source), \(job.options.epochs) epochs")
        logger.info("training started", metadata: ["name": "\(job.name)", "version": "\(job.version)", "examples": "\(job.examples.count)"])
        let trainer = Trainer(model: model, options: job.options)
        let started = ContinuousClock.now
        let outcome = await onTrainingThread(name: "adapterd-train") { () throws(TrainingError) -> (TrainableAdapter, Trainer.Report) in
            var lastReport = ContinuousClock.now
            return try trainer.train(
                job.examples, eval: job.eval, labels: job.labels,
                progress: { progress in
                    // At most one progress event a second, and every epoch's last step.
                    let epochEnd = progress.step % max(1, progress.totalSteps / max(1, job.options.epochs)) == 0
                    guard epochEnd || ContinuousClock.now - lastReport >= .seconds(1) else { return }
                    lastReport = .now
                    event(.training, "step \(progress.step) of \(progress.totalSteps)", AdapterEvent.Training(
                        epoch: progress.epoch + 1, step: progress.step, totalSteps: progress.totalSteps, loss: progress.loss))
                },
                isCancelled: { cancellation.isCancelled || ContinuousClock.now - started > job.timeLimit },
                pause: {
                    // Even at idle CPU priority a training step evicts the caches a request needs and
                    // holds a core until the scheduler preempts it: it waits while requests are served.
                    waitWhileServing { cancellation.isCancelled }
                })
        }
        let directory = Self.directory(data: registry.dataDirectory) + "/\(job.name)@\(job.version)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let (adapter, report) = try outcome.get()
            try adapter.write(to: directory, baseModel: baseModel)
            CrashPoint.reached(.trainingWritten)
            var figures = "\(source), \(report.epochs) epochs, \(report.steps) steps, final loss \(String(format: "%.4f", report.finalLoss))"
            if let accuracy = report.evalAccuracy { figures += ", eval accuracy \(String(format: "%.3f", accuracy)) on \(job.eval.count)" }
            let peakMiB = report.peakBytes >> 20
            figures += String(format: ", %.2f s per epoch, peak %d MiB", report.secondsPerEpoch, peakMiB)
            try await registry.load(name: job.name, version: job.version, path: directory, actor: job.actor, source: "trained on the worker")
            try registry.record(HistoryRecord(name: job.name, version: job.version, action: .trained, actor: job.actor, reason: figures))
            if job.activate {
                try await registry.activate(name: job.name, version: job.version, actor: job.actor, reason: "activated after training")
            }
            event(.trained, figures)
            logger.info("training finished", metadata: ["name": "\(job.name)", "version": "\(job.version)", "figures": "\(figures)"])
        } catch TrainingError.cancelled where !cancellation.isCancelled {
            let reason = "it ran longer than training.maxSeconds (\(job.timeLimit.components.seconds) s); nothing was staged"
            try? registry.record(HistoryRecord(name: job.name, version: job.version, action: .trainingFailed, actor: job.actor, reason: reason))
            event(.trainingFailed, reason)
            logger.warning("training over its time limit", metadata: ["name": "\(job.name)", "version": "\(job.version)"])
        } catch TrainingError.cancelled {
            try? registry.record(HistoryRecord(name: job.name, version: job.version, action: .trainingCancelled, actor: job.actor, reason: "nothing was staged"))
            event(.trainingCancelled, "cancelled; nothing was staged")
            logger.notice("training cancelled", metadata: ["name": "\(job.name)", "version": "\(job.version)"])
        } catch {
            let reason = RPCError(mapping: error).message
            try? registry.record(HistoryRecord(name: job.name, version: job.version, action: .trainingFailed, actor: job.actor, reason: reason))
            event(.trainingFailed, reason)
            logger.warning("training failed", metadata: ["name": "\(job.name)", "version": "\(job.version)", "reason": "\(reason)"])
        }
    }
}
