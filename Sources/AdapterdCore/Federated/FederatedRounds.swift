import AdapterdClient
import AdapterEngine
import AdapterFormats
import AdapterRuntime
import AdapterTraining
import FederatedLearning
import Foundation
import Logging
import MQTTRPC

/// The worker's part in federated runs: one round at a time, offered by a fleet controller, the global adapter
/// received in chunks, trained locally on the examples stored for the name (in the worker's one training slot, on
/// the idle-priority training thread, pausing while requests are served), and the update handed out in chunks.
/// Only tensors, counts and accuracies leave: the examples stay in the worker's SQLite file.
public actor FederatedRounds {
    /// Which round a step belongs to.
    public struct Key: Sendable, Equatable, CustomStringConvertible {
        public var name: String
        public var run: String
        public var round: Int

        /// Round `round` of run `run` for adapter `name`.
        public init(name: String, run: String, round: Int) {
            self.name = name
            self.run = run
            self.round = round
        }

        public var description: String { "'\(name)' run \(run) round \(round)" }
    }

    /// What a controller offers: the global adapter's transfer and the round's plan.
    public struct Offer: Sendable {
        public var size: Int
        public var sha256: String
        public var chunkSize: Int
        public var baseFingerprint: String
        public var plan: RoundPlan
        public var minExamples: Int

        /// An offer of a `size`-byte global adapter (0: none, the first round) in `chunkSize` chunks.
        public init(size: Int, sha256: String, chunkSize: Int, baseFingerprint: String, plan: RoundPlan, minExamples: Int) {
            self.size = size
            self.sha256 = sha256
            self.chunkSize = chunkSize
            self.baseFingerprint = baseFingerprint
            self.plan = plan
            self.minExamples = minExamples
        }
    }

    /// Why a step was refused.
    public enum Refusal: Error, CustomStringConvertible, Sendable, Equatable {
        case wrongBaseModel(offered: String, served: String)
        case tooFewExamples(name: String, stored: Int, needed: Int)
        case busy(String)
        case tooLarge(size: Int, limit: Int)
        case invalidOffer(String)
        case unknownRound(Key)
        case chunkOutOfRange(index: Int, chunks: Int)
        case chunkLength(index: Int, expected: Int, got: Int)
        case digestMismatch(expected: String, got: String)
        case notReady(String)

        public var description: String {
            switch self {
            case let .wrongBaseModel(offered, served):
                return "the run trains on base model \(offered.prefix(12))…, this worker serves \(served.prefix(12))…"
            case let .tooFewExamples(name, stored, needed):
                return "this worker holds \(stored) examples for '\(name)'; the run needs at least \(needed)"
            case .busy(let reason): return reason
            case let .tooLarge(size, limit): return "the global adapter is \(size) bytes; this worker takes at most \(limit) (64 MiB, or security.maxPushBytes when lower)"
            case .invalidOffer(let reason): return "invalid offer: \(reason)"
            case .unknownRound(let key): return "\(key) was not offered to this worker (or another round replaced it): offer it first"
            case let .chunkOutOfRange(index, chunks): return "chunk \(index) is outside 0..<\(chunks)"
            case let .chunkLength(index, expected, got): return "chunk \(index) holds \(got) bytes; expected \(expected)"
            case let .digestMismatch(expected, got):
                return "the global adapter's SHA-256 is \(got), the offer said \(expected); its chunks were dropped, send them again"
            case .notReady(let reason): return reason
            }
        }
    }

    /// Where a round stands, for replies.
    public struct Status: Sendable {
        /// "receiving", "ready", "training", "trained" or "failed".
        public var state: String
        public var storedExamples = 0
        public var chunks = 0
        public var missing: [Int] = []
        public var step = 0
        public var totalSteps = 0
        public var failure = ""
        public var outcome: Trained?
        /// The bytes of the update chunk asked for.
        public var chunk: [UInt8]?
    }

    /// A finished local training.
    public struct Trained: Sendable {
        public var update: [UInt8]
        public var sha256: String
        public var examples: Int
        public var heldOut: Int
        public var skipped: Int
        public var accuracy: Double?
    }

    /// The trainer's step, written by the training thread and read by `collect`.
    final class Progress: @unchecked Sendable {
        private let lock = NSLock()
        private var value = (step: 0, total: 0)
        var current: (step: Int, total: Int) { lock.withLock { value } }
        func set(_ step: Int, _ total: Int) { lock.withLock { value = (step, total) } }
    }

    private enum Phase {
        case receiving, ready, training, trained(Trained), failed(String)
    }

    private struct Round {
        var key: Key
        var offer: Offer
        var stored: Int
        var chunks: [Int: [UInt8]] = [:]
        var global: TensorSet?
        /// The first round's start when the run continues a stored version.
        var start: TensorSet?
        var phase: Phase
        let progress = Progress()
        var chunkCount: Int { offer.size == 0 ? 0 : (offer.size + offer.chunkSize - 1) / offer.chunkSize }
    }

    private let training: TrainingJobs
    private let registry: AdapterRegistry
    private let model: BertModel
    private let baseFingerprint: String
    private let memoryBudget: Int
    private let maxBytes: Int
    private let timeLimit: Duration
    private let logger: Logger
    private let events: @Sendable (AdapterEvent) -> Void
    private var current: Round?

    /// Rounds trained in `training`'s slot over `model` (whose weights hash to `baseFingerprint`) on the examples in
    /// `registry`, within `memoryBudget` bytes and `timeLimit`; global adapters up to `maxBytes`.
    public init(
        training: TrainingJobs, registry: AdapterRegistry, model: BertModel, baseFingerprint: String, memoryBudget: Int, maxBytes: Int,
        timeLimit: Duration, logger: Logger, events: @escaping @Sendable (AdapterEvent) -> Void
    ) {
        self.training = training
        self.registry = registry
        self.model = model
        self.baseFingerprint = baseFingerprint
        self.memoryBudget = memoryBudget
        self.maxBytes = maxBytes
        self.timeLimit = timeLimit
        self.logger = logger
        self.events = events
    }

    /// Takes part in round `key` (again: then only the status, with the chunks still missing).
    public func offer(_ key: Key, _ offer: Offer) async throws -> Status {
        if let current, current.key == key { return status(current) }
        if let current, case .training = current.phase {
            // A straggler's round the controller has moved past is dropped; another run's is left to finish.
            guard current.key.name == key.name, current.key.run == key.run, current.key.round < key.round else {
                throw Refusal.busy("this worker is training \(current.key); one round at a time")
            }
            try? await training.cancel(name: current.key.name, version: Self.slotVersion(current.key))
            throw Refusal.busy("this worker is stopping \(current.key), which the run has moved past; offer again")
        }
        guard offer.baseFingerprint.isEmpty || offer.baseFingerprint == baseFingerprint else {
            throw Refusal.wrongBaseModel(offered: offer.baseFingerprint, served: baseFingerprint)
        }
        guard offer.size >= 0, offer.size <= maxBytes else { throw Refusal.tooLarge(size: offer.size, limit: maxBytes) }
        guard offer.size == 0 || (1024...(512 << 10)).contains(offer.chunkSize) else {
            throw Refusal.invalidOffer("chunk_size must be 1 KiB to 512 KiB, got \(offer.chunkSize)")
        }
        guard offer.size == 0 || (offer.sha256.count == 64 && offer.sha256.allSatisfy(\.isHexDigit)) else {
            throw Refusal.invalidOffer("sha256 must be 64 hex digits")
        }
        let options = try offer.plan.trainerOptions(round: key.round)
        var start: TensorSet?
        if offer.size == 0, let base = offer.plan.baseVersion {
            // The first round of a run that continues a version: this worker's copy, read and checked now.
            let entry = try await registry.resolve(name: key.name, version: base)
            start = try LocalTraining(model: model, plan: offer.plan).baseTensors(directory: entry.path)
        }
        let examples = try registry.feedback(name: key.name)
        guard examples.count >= max(offer.minExamples, 1) else {
            throw Refusal.tooFewExamples(name: key.name, stored: examples.count, needed: max(offer.minExamples, 1))
        }
        var sized = options
        sized.memoryBudgetBytes = memoryBudget
        let estimated = Trainer(model: model, options: sized).estimatedPeakBytes(
            for: examples.map { TrainingExample(text: $0.text, label: $0.label) }, labels: offer.plan.labels.count)
        if estimated > memoryBudget { throw TrainingError.tooLarge(neededBytes: estimated, budgetBytes: memoryBudget) }
        var round = Round(key: key, offer: offer, stored: examples.count, phase: offer.size == 0 ? .ready : .receiving)
        round.start = start
        current = round
        logger.info("federated round offered", metadata: ["round": "\(key)", "examples": "\(examples.count)"])
        return status(round)
    }

    /// Stores chunk `index` of the global adapter; the last one verifies and reads it.
    public func chunk(_ key: Key, index: Int, data: [UInt8]) throws -> Status {
        guard var round = current, round.key == key else { throw Refusal.unknownRound(key) }
        guard case .receiving = round.phase else { return status(round) }
        guard (0..<round.chunkCount).contains(index) else { throw Refusal.chunkOutOfRange(index: index, chunks: round.chunkCount) }
        let expected = min(round.offer.chunkSize, round.offer.size - index * round.offer.chunkSize)
        guard data.count == expected else { throw Refusal.chunkLength(index: index, expected: expected, got: data.count) }
        round.chunks[index] = data
        if round.chunks.count == round.chunkCount {
            let bytes = (0..<round.chunkCount).flatMap { round.chunks[$0]! }
            let digest = AdapterDigest.sha256(of: bytes)
            round.chunks = [:]
            guard digest == round.offer.sha256 else {
                current = round
                throw Refusal.digestMismatch(expected: round.offer.sha256, got: digest)
            }
            round.global = try TensorSet(safetensors: bytes, name: "the global adapter of \(key)")
            round.phase = .ready
        }
        current = round
        return status(round)
    }

    /// Starts the local training (once the global adapter is complete); again while it runs, the status.
    public func train(_ key: Key) async throws -> Status {
        guard let round = current, round.key == key else { throw Refusal.unknownRound(key) }
        switch round.phase {
        case .receiving: throw Refusal.notReady("the global adapter of \(key) is missing \(round.chunkCount - round.chunks.count) chunks")
        case .training, .trained, .failed: return status(round)
        case .ready: break
        }
        let examples = try registry.feedback(name: key.name).map { TrainingExample(text: $0.text, label: $0.label) }
        let local = LocalTraining(model: model, plan: round.offer.plan)
        let global = round.global, start = round.start, progress = round.progress, timeLimit = timeLimit, events = events
        // Training before the slot is asked for: a round that ends at once reports its end after this, never before.
        current?.phase = .training
        do {
            try await training.start(name: key.name, version: Self.slotVersion(key)) { slot in
                let started = ContinuousClock.now
                events(AdapterEvent(event: .training, name: key.name, version: "", actor: "federated", reason: "federated run \(key.run) round \(key.round) on \(examples.count) examples"))
                let outcome = await TrainingJobs.onTrainingThread(name: "adapterd-federated") { () throws(TrainingError) -> LocalTraining.Outcome in
                    try local.run(
                        round: key.round, global: global, start: start, examples: examples,
                        progress: { progress.set($0.step, $0.totalSteps) },
                        isCancelled: { slot.isCancelled || ContinuousClock.now - started > timeLimit }, pause: slot.pause)
                }
                await self.finish(key, outcome)
            }
        } catch {
            if current?.key == key { current?.phase = .ready }
            throw error
        }
        return status(current!)
    }

    /// Where round `key` stands; once trained, with chunk `index` of the update when `chunkSize` is set.
    public func collect(_ key: Key, index: Int, chunkSize: Int) throws -> Status {
        guard let round = current, round.key == key else { throw Refusal.unknownRound(key) }
        var reply = status(round)
        if case .trained(let trained) = round.phase, chunkSize > 0 {
            guard (1024...(512 << 10)).contains(chunkSize) else { throw Refusal.invalidOffer("chunk_size must be 1 KiB to 512 KiB, got \(chunkSize)") }
            let chunks = (trained.update.count + chunkSize - 1) / chunkSize
            guard (0..<chunks).contains(index) else { throw Refusal.chunkOutOfRange(index: index, chunks: chunks) }
            reply.chunk = Array(trained.update[(index * chunkSize)..<min(trained.update.count, (index + 1) * chunkSize)])
        }
        return reply
    }

    /// Stops any round's training (the worker is stopping).
    public func shutdown() async {
        guard let current, case .training = current.phase else { return }
        try? await training.cancel(name: current.key.name, version: Self.slotVersion(current.key))
    }

    private func finish(_ key: Key, _ outcome: Result<LocalTraining.Outcome, TrainingError>) {
        let phase: Phase
        switch outcome {
        case .success(let result):
            var tensors = result.tensors
            tensors.metadata = ["format": "pt", "examples": "\(result.examples)"]
            let update = tensors.safetensors()
            phase = .trained(Trained(
                update: update, sha256: AdapterDigest.sha256(of: update), examples: result.examples, heldOut: result.heldOut,
                skipped: result.skipped, accuracy: result.accuracy))
            logger.info("federated round trained", metadata: ["round": "\(key)", "examples": "\(result.examples)", "bytes": "\(update.count)"])
        case .failure(let error):
            phase = .failed(RPCError(mapping: error).message)
            logger.warning("federated round failed", metadata: ["round": "\(key)", "reason": "\(error)"])
        }
        if current?.key == key { current?.phase = phase }
    }

    private func status(_ round: Round) -> Status {
        var status = Status(state: "receiving", storedExamples: round.stored, chunks: round.chunkCount)
        let progress = round.progress.current
        (status.step, status.totalSteps) = progress
        switch round.phase {
        case .receiving: status.missing = (0..<round.chunkCount).filter { round.chunks[$0] == nil }
        case .ready: status.state = "ready"
        case .training: status.state = "training"
        case .trained(let trained):
            status.state = "trained"
            status.outcome = trained
        case .failed(let reason):
            status.state = "failed"
            status.failure = reason
        }
        return status
    }

    /// The label a round's training holds the training slot under (as a version would).
    static func slotVersion(_ key: Key) -> String { "federated-\(key.run)-\(key.round)" }
}
