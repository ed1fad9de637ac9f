import AdapterEngine
import Foundation
import Metrics

/// Runs the engine on a thread of its own and batches whatever requests are waiting when it becomes free
/// (continuous batching): one request alone runs at once; requests that arrive during a batch form the next one,
/// mixed adapters included. Inference never runs on the MQTT thread or on Swift's cooperative pool.
///
/// A class with a condition lock because its thread is not a Swift task.
public final class BatchExecutor: @unchecked Sendable {
    private struct Job {
        /// A row to infer, or (with `featureLayers`) a row whose base-model features an input router needs.
        let input: EncodedInput
        let featureLayers: Int?
        let deadline: ContinuousClock.Instant?
        /// Answered with the row's output or the engine's refusal of it; nil when it expired or the executor stopped.
        let continuation: CheckedContinuation<Result<CheckedOutput, InferenceError>?, Never>
    }

    private let engine: InferenceEngine
    private let maxBatch: Int
    private let condition = NSCondition()
    /// Broadcast when a batch ends with nothing waiting (for `waitForGap`); separate from `condition`, whose
    /// single-waiter signal must always reach the engine thread.
    private let gap = NSCondition()
    private var pending: [Job] = []
    private var stopped = false
    private var batches = 0
    private var rows = 0
    private var largest = 0
    /// Whether a batch is running, and when the last one ended.
    private var running = false
    private var lastBatchEnded = ContinuousClock.now
    private let batchSizes: Recorder?

    /// The largest batch when the configuration names none (setting `maxBatch`).
    public static let defaultMaxBatch = 32

    /// Starts the engine thread; each batch's row count goes to `batchSizes`.
    public init(engine: InferenceEngine, maxBatch: Int = defaultMaxBatch, batchSizes: Recorder? = nil) {
        self.engine = engine
        self.maxBatch = max(1, maxBatch)
        self.batchSizes = batchSizes
        let thread = Thread { [self] in
            // Named from the thread itself (a name set before start did not reach the kernel on Linux); the OpenMP
            // team's threads, started from it, take the same name in `top` and `perf`.
            Thread.current.name = "adapterd-engine"
            loop()
        }
        thread.start()
    }

    /// Runs one row, batched with whatever else is waiting; nil when `deadline` passed before its batch started, or
    /// the executor was shut down. Throws when the engine refuses the row (its ids do not fit the model).
    public func run(_ input: EncodedInput, deadline: ContinuousClock.Instant? = nil) async throws(InferenceError) -> CheckedOutput? {
        let result = await withCheckedContinuation { continuation in
            enqueue(Job(input: input, featureLayers: nil, deadline: deadline, continuation: continuation))
        }
        return try result?.get()
    }

    /// The pooled base-model features after `layers` layers of each row, for input routers: batched with whatever
    /// else is waiting (features of one depth run as one pass, before the inference rows). Nil when the
    /// executor stopped.
    public func features(_ rows: [[Int32]], layers: Int) async -> [[Float]]? {
        await withTaskGroup(of: (Int, [Float]?).self) { group in
            for (index, ids) in rows.enumerated() {
                group.addTask {
                    let output = await withCheckedContinuation { continuation in
                        self.enqueue(Job(input: EncodedInput(ids: ids, adapter: nil), featureLayers: layers, deadline: nil, continuation: continuation))
                    }
                    if case .success(let checked)? = output, case .embedding(let values) = checked.output { return (index, values) }
                    return (index, nil)
                }
            }
            var out = [[Float]?](repeating: nil, count: rows.count)
            for await (index, values) in group { out[index] = values }
            return out.contains { $0 == nil } ? nil : out.map { $0! }
        }
    }

    /// Queues `job` for the engine thread; after `shutdown` it is answered with nil at once (the thread is gone).
    private func enqueue(_ job: Job) {
        condition.lock()
        guard !stopped else {
            condition.unlock()
            job.continuation.resume(returning: nil)
            return
        }
        pending.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Batches run so far and rows in them.
    public var counts: (batches: Int, rows: Int) {
        condition.lock()
        defer { condition.unlock() }
        return (batches, rows)
    }

    /// Rows waiting for the engine.
    public var queueDepth: Int {
        condition.lock()
        defer { condition.unlock() }
        return pending.count
    }

    /// The largest batch since the previous call that reset.
    public func largestBatch(reset: Bool) -> Int {
        condition.lock()
        defer {
            if reset { largest = 0 }
            condition.unlock()
        }
        return largest
    }

    /// Whether the engine is running or has waiting rows, or finished a batch less than `recently` ago.
    public func isBusy(within recently: Duration) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        return running || !pending.isEmpty || ContinuousClock.now - lastBatchEnded < recently
    }

    /// Blocks the calling background thread while the engine is busy (`isBusy(within: quiet)`), for at most `limit`
    /// (none: for as long as it stays busy) and until `stop` holds: background work then runs between requests
    /// instead of beside them (even at idle CPU priority, work beside a pass takes caches and the moments the team's
    /// threads are between parallel regions). A load's steps and its smoke inference's layers wait with a limit, so
    /// they still finish under continuous traffic; a training's layers wait with a quiet period and no limit. Never
    /// call it from the engine thread or a task.
    public func waitForGap(quiet: Duration = .zero, atMost limit: Duration? = nil, unless stop: () -> Bool = { false }) {
        let deadline = limit.map { ContinuousClock.now + $0 }
        while !stop(), isBusy(within: quiet) {
            if let deadline, ContinuousClock.now >= deadline { return }
            // A bounded wait: a broadcast between the check and the wait is not lost for longer than a millisecond,
            // and a quiet period ends without one.
            gap.lock()
            _ = gap.wait(until: Date(timeIntervalSinceNow: 0.001))
            gap.unlock()
        }
    }

    /// Stops the thread after the batch it is running.
    public func shutdown() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while pending.isEmpty && !stopped { condition.wait() }
            if pending.isEmpty && stopped {
                condition.unlock()
                return
            }
            var batch = Array(pending.prefix(maxBatch))
            pending.removeFirst(batch.count)
            condition.unlock()
            let now = ContinuousClock.now
            for job in batch where job.deadline.map({ $0 <= now }) ?? false { job.continuation.resume(returning: nil) }
            batch.removeAll { $0.deadline.map { $0 <= now } ?? false }
            guard !batch.isEmpty else { continue }
            condition.lock()
            batches += 1
            rows += batch.count
            largest = max(largest, batch.count)
            running = true
            condition.unlock()
            defer {
                condition.lock()
                running = false
                lastBatchEnded = .now
                let idle = pending.isEmpty
                condition.unlock()
                if idle { gap.broadcast() }
            }
            batchSizes?.record(batch.count)
            // Routing features first: the inference they precede may be waiting for them in a later batch.
            let routing = batch.filter { $0.featureLayers != nil }
            for layers in Set(routing.compactMap(\.featureLayers)).sorted() {
                let jobs = routing.filter { $0.featureLayers == layers }
                answer(jobs) { jobs throws(InferenceError) in
                    try engine.features(encoded: jobs.map(\.input.ids), layers: layers).map { CheckedOutput(output: .embedding($0), outcome: .unchecked) }
                }
            }
            let inference = batch.filter { $0.featureLayers == nil }
            guard !inference.isEmpty else { continue }
            answer(inference) { jobs throws(InferenceError) in try engine.runChecked(encoded: jobs.map(\.input)) }
        }
    }

    /// Answers `jobs` with `run`'s outputs. The engine checks a batch's rows before it runs any: when it refuses
    /// the batch, each row runs alone, so one bad row is refused without failing the rows batched with it.
    private func answer(_ jobs: [Job], _ run: ([Job]) throws(InferenceError) -> [CheckedOutput]) {
        do {
            let outputs = try run(jobs)
            for (job, output) in zip(jobs, outputs) { job.continuation.resume(returning: .success(output)) }
        } catch {
            for job in jobs {
                do {
                    let output = try run([job])
                    job.continuation.resume(returning: output.first.map { .success($0) })
                } catch {
                    job.continuation.resume(returning: .failure(error))
                }
            }
        }
    }
}
