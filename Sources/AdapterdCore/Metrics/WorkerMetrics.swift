import AdapterdClient
import AdapterEngine
import AdapterRuntime
import Foundation
import Metrics
import MQTTRPC

/// The worker's figures: recorded per request and per batch, reported through swift-metrics (for whichever
/// backend the executable binds, e.g. Prometheus) and as `MetricsSnapshot` documents for the metrics topic, the
/// dashboard and `adapterctl top`.
public actor WorkerMetrics {
    struct VersionKey: Hashable {
        let name: String
        let version: String
    }

    /// One adapter version's figures: totals since start, and what happened in the current interval.
    struct VersionFigures {
        var requestsTotal = 0
        var errorsTotal: [String: Int] = [:]
        var requests = 0
        var errors: [String: Int] = [:]
        var latenciesMs: [Double] = []
        var lastUsed: Date?
        /// Latencies since the last one-second sample, for the history.
        var recentMs: [Double] = []
        var requestsAtLastSample = 0
        /// Since start: predicted labels, top-1 probabilities, and a bounded sample of latencies.
        var labelsTotal: [String: Int] = [:]
        var confidenceSum = 0.0
        var lifetimeMs: [Double] = []
        var lifetimeSeen = 0
        /// Since start, INT8 only: rows the label check looked at, and those of them the FP32 pass answered.
        var labelChecks = 0
        var labelRechecks = 0
        /// Since start: shadow comparisons with the version this one replaced.
        var shadow: MetricsSnapshot.Shadow?
    }

    /// One point of the recent history the dashboard draws: per adapter version ("name version"), requests per
    /// second and p95 latency in milliseconds over the second before `at` (unix seconds).
    public struct HistoryPoint: Codable, Sendable, Equatable {
        public var at: Double
        public var perSecond: [String: Double]
        public var p95Ms: [String: Double]
    }

    /// Points kept (one per sample, about a second apart).
    static let historyLength = 180

    /// Latency samples kept per version per interval; beyond it, samples replace random earlier ones.
    static let maxSamples = 20_000
    static let maxEvents = 20
    /// The adapter name under which requests for adapters that could not be resolved are counted.
    public static let unresolved = "(unresolved)"

    private let factory: MetricsFactory
    private var versions: [VersionKey: VersionFigures] = [:]
    private var counters: [String: Counter] = [:]
    private var timers: [VersionKey: Metrics.Timer] = [:]
    private var events: [AdapterEvent] = []
    private var intervalStart = ContinuousClock.now
    private var batchesAtIntervalStart = (batches: 0, rows: 0)
    private var publishedCache = AdapterCache.Counters()
    private var random = SystemRandomNumberGenerator()
    private var lastSample = ContinuousClock.now
    /// The last `historyLength` samples, oldest first.
    public private(set) var history: [HistoryPoint] = []

    let inFlightGauge: Gauge
    let queueGauge: Gauge
    /// Rows per batch, recorded by the batch executor.
    public nonisolated let batchRecorder: Recorder
    let cacheBytesGauge: Gauge
    let cacheBudgetGauge: Gauge
    let mergedBytesGauge: Gauge
    let mergedAdaptersGauge: Gauge
    let uptimeGauge: Gauge
    let rssGauge: Gauge
    let cacheHits: Counter
    let cacheMisses: Counter
    let cacheEvictions: Counter
    let cacheLoads: Counter
    let cacheLoadSeconds: FloatingPointCounter

    /// Input routers' figures since start.
    private var routers: [String: MetricsSnapshot.Router] = [:]
    private var routingSeconds: [String: Double] = [:]

    /// The engine's precision and kernel path, reported in every document and as `adapterd_engine_info`.
    let engine: MetricsSnapshot.Engine?
    let engineInfoGauge: Gauge?

    /// Figures reported through `factory` (default: the process's bootstrapped metrics system).
    public init(factory: MetricsFactory = MetricsSystem.factory, engine: MetricsSnapshot.Engine? = nil) {
        self.factory = factory
        self.engine = engine
        engineInfoGauge = engine.map {
            Gauge(label: "adapterd_engine_info", dimensions: [("precision", $0.precision), ("kernel_path", $0.kernelPath)], factory: factory)
        }
        engineInfoGauge?.record(1)
        inFlightGauge = Gauge(label: "adapterd_in_flight_requests", factory: factory)
        queueGauge = Gauge(label: "adapterd_queue_depth", factory: factory)
        batchRecorder = Recorder(label: "adapterd_batch_size", aggregate: true, factory: factory)
        cacheBytesGauge = Gauge(label: "adapterd_cache_bytes", factory: factory)
        cacheBudgetGauge = Gauge(label: "adapterd_cache_budget_bytes", factory: factory)
        mergedBytesGauge = Gauge(label: "adapterd_merged_bytes", factory: factory)
        mergedAdaptersGauge = Gauge(label: "adapterd_merged_adapters", factory: factory)
        uptimeGauge = Gauge(label: "adapterd_uptime_seconds", factory: factory)
        rssGauge = Gauge(label: "adapterd_resident_memory_bytes", factory: factory)
        cacheHits = Counter(label: "adapterd_cache_hits_total", factory: factory)
        cacheMisses = Counter(label: "adapterd_cache_misses_total", factory: factory)
        cacheEvictions = Counter(label: "adapterd_cache_evictions_total", factory: factory)
        cacheLoads = Counter(label: "adapterd_cache_loads_total", factory: factory)
        cacheLoadSeconds = FloatingPointCounter(label: "adapterd_cache_load_seconds_total", factory: factory)
    }

    /// One routing step of router `router`: the adapter that serves (its choice, or the route's on a
    /// `fallback`, counted by its reason) and how long routing took.
    public func recordRouting(router: String, adapter: String, fallback: RouterFallback?, duration: Duration) {
        var figures = routers[router] ?? MetricsSnapshot.Router(name: router, decisions: [:], fallbacks: 0, meanMs: 0)
        let decided = figures.decisions.values.reduce(0, +) + figures.fallbacks
        if let fallback {
            figures.fallbacks += 1
            Counter(label: "adapterd_router_fallbacks_total", dimensions: [("router", router), ("reason", fallback.rawValue)], factory: factory).increment()
        } else {
            figures.decisions[adapter, default: 0] += 1
            Counter(label: "adapterd_router_decisions_total", dimensions: [("router", router), ("adapter", adapter)], factory: factory).increment()
        }
        routingSeconds[router, default: 0] += duration.inSeconds
        figures.meanMs = routingSeconds[router]! * 1000 / Double(decided + 1)
        routers[router] = figures
        Metrics.Timer(label: "adapterd_routing_seconds", dimensions: [("router", router)], factory: factory).recordNanoseconds(Int64(duration.inSeconds * 1e9))
    }

    /// One inference request's outcome; `name` and `version` are empty when it ran on the base model alone (or
    /// failed before an adapter was resolved, then under the name it asked for).
    /// A classification's predicted `label` and its top-1 probability `confidence` feed the version's label
    /// distribution (bounded by the adapter's own labels); `labelCheck` says whether the label check had a more exact
    /// pass answer it.
    public func recordInference(
        name: String, version: String, status: RPCStatus, latency: Duration, label: String? = nil, confidence: Double? = nil,
        labelCheck: LabelCheckOutcome = .unchecked
    ) {
        let key = VersionKey(name: name, version: version)
        var figures = versions[key] ?? VersionFigures()
        if labelCheck != .unchecked {
            figures.labelChecks += 1
            labelCheckCounter(key, "adapterd_label_checks_total").increment()
            if labelCheck.answeredByRecheck {
                figures.labelRechecks += 1
                labelCheckCounter(key, "adapterd_label_rechecks_total").increment()
            }
        }
        figures.requestsTotal += 1
        figures.requests += 1
        figures.lastUsed = Date()
        // A NaN confidence (an adapter whose outputs are not numbers) would make the mean NaN for good.
        if let label, let confidence, confidence.isFinite {
            figures.labelsTotal[label, default: 0] += 1
            figures.confidenceSum += confidence
        }
        figures.lifetimeSeen += 1
        if figures.lifetimeMs.count < Self.maxSamples {
            figures.lifetimeMs.append(latency.inMilliseconds)
        } else if case let slot = Int.random(in: 0..<figures.lifetimeSeen, using: &random), slot < Self.maxSamples {
            figures.lifetimeMs[slot] = latency.inMilliseconds
        }
        if status != .ok {
            figures.errorsTotal[status.name, default: 0] += 1
            figures.errors[status.name, default: 0] += 1
        }
        let milliseconds = latency.inMilliseconds
        if figures.recentMs.count < Self.maxSamples { figures.recentMs.append(milliseconds) }
        if figures.latenciesMs.count < Self.maxSamples {
            figures.latenciesMs.append(milliseconds)
        } else {
            figures.latenciesMs[Int.random(in: 0..<Self.maxSamples, using: &random)] = milliseconds
        }
        versions[key] = figures
        counter(name: name, version: version, status: status).increment()
        timer(key).recordNanoseconds(latency.components.seconds * 1_000_000_000 + latency.components.attoseconds / 1_000_000_000)
    }

    /// One shadow comparison of (name, version) with `against`, the version it replaced (nil: the replaced version
    /// could not run).
    func recordShadow(name: String, version: String, against: String, comparison: ShadowComparison?) {
        let key = VersionKey(name: name, version: version)
        var figures = versions[key] ?? VersionFigures()
        var shadow = figures.shadow ?? MetricsSnapshot.Shadow(against: against)
        if shadow.against != against { shadow = MetricsSnapshot.Shadow(against: against) }
        if let comparison {
            shadow.compared += 1
            if let agreed = comparison.agreed {
                shadow.labelled += 1
                if agreed { shadow.agreed += 1 }
            }
            if let delta = comparison.maxAbsLogitDelta {
                shadow.maxAbsLogitDelta = max(shadow.maxAbsLogitDelta ?? 0, delta)
                shadow.sumMaxAbsLogitDelta += delta
            }
            if let change = comparison.confidenceChange { shadow.sumConfidenceChange += change }
            if let cosine = comparison.cosine {
                shadow.minCosine = min(shadow.minCosine ?? 1, cosine)
                shadow.sumCosine += cosine
            }
        } else {
            shadow.failed += 1
        }
        figures.shadow = shadow
        versions[key] = figures
        Counter(label: "adapterd_shadow_comparisons_total", dimensions: [("adapter", name), ("version", version), ("outcome",
            comparison == nil ? "failed" : comparison?.agreed == false ? "disagreed" : "agreed")], factory: factory).increment()
    }

    /// A request of (name, version) sampled for shadow comparison but dropped: the queue was full.
    func recordShadowDropped(name: String, version: String) {
        let key = VersionKey(name: name, version: version)
        var figures = versions[key] ?? VersionFigures()
        if figures.shadow != nil { figures.shadow?.dropped += 1 }
        versions[key] = figures
        Counter(label: "adapterd_shadow_comparisons_total", dimensions: [("adapter", name), ("version", version), ("outcome", "dropped")], factory: factory)
            .increment()
    }

    /// p50, p95 and p99 of `samples` (milliseconds); nil without samples.
    static func latency(of samples: [Double]) -> MetricsSnapshot.Latency? {
        guard !samples.isEmpty else { return nil }
        let sorted = samples.sorted()
        return MetricsSnapshot.Latency(p50: Percentile.of(sorted, 0.50), p95: Percentile.of(sorted, 0.95), p99: Percentile.of(sorted, 0.99))
    }

    /// Keeps a lifecycle event for the dashboard.
    public func recordEvent(_ event: AdapterEvent) {
        events.append(event)
        if events.count > Self.maxEvents { events.removeFirst(events.count - Self.maxEvents) }
    }

    /// Inputs a snapshot needs from the rest of the worker.
    public struct WorkerState: Sendable {
        public var worker: String
        public var state: String
        public var uptimeSeconds: Double
        public var requestsTotal: Int
        public var requestsFailed: Int
        public var inFlight: Int
        public var queueDepth: Int
        public var batches: (batches: Int, rows: Int)
        /// Largest batch since the previous snapshot that reset.
        public var largestBatch: Int
        public var cache: AdapterCache.Counters
        public var cacheBudget: Int
        /// Registered versions: (name, version, state, cache state).
        public var registered: [(name: String, version: String, state: String, cache: String)]
        /// Rows the INT8 engine answered from its FP32 re-check of near ties, since start.
        public var labelRechecks = 0
        /// Adapters merged into copies of their layers now, the bytes those hold, and the budget (nil: merging off).
        public var merged: (adapters: Int, bytes: Int, budget: Int)?
    }

    /// Updates the gauges and cache counters from `state` (called every second or so).
    public func sample(_ state: WorkerState) {
        inFlightGauge.record(state.inFlight)
        queueGauge.record(state.queueDepth)
        uptimeGauge.record(state.uptimeSeconds)
        rssGauge.record(Self.residentBytes())
        cacheBytesGauge.record(state.cache.bytes)
        cacheBudgetGauge.record(state.cacheBudget)
        mergedBytesGauge.record(state.merged?.bytes ?? 0)
        mergedAdaptersGauge.record(state.merged?.adapters ?? 0)
        let cache = state.cache
        cacheHits.increment(by: max(0, cache.hits - publishedCache.hits))
        cacheMisses.increment(by: max(0, cache.misses - publishedCache.misses))
        cacheEvictions.increment(by: max(0, cache.evictions - publishedCache.evictions))
        cacheLoads.increment(by: max(0, cache.loads - publishedCache.loads))
        cacheLoadSeconds.increment(by: max(0, cache.loadSeconds - publishedCache.loadSeconds))
        publishedCache = cache

        let now = ContinuousClock.now
        let elapsed = now - lastSample
        let seconds = max(elapsed.inSeconds, 1e-3)
        lastSample = now
        var point = HistoryPoint(at: Date().timeIntervalSince1970, perSecond: [:], p95Ms: [:])
        for (key, figures) in versions {
            let label = (key.name.isEmpty ? "(base model)" : key.name) + (key.version.isEmpty ? "" : " " + key.version)
            point.perSecond[label] = Double(figures.requestsTotal - figures.requestsAtLastSample) / seconds
            if !figures.recentMs.isEmpty { point.p95Ms[label] = Percentile.of(figures.recentMs.sorted(), 0.95) }
            versions[key]?.requestsAtLastSample = figures.requestsTotal
            versions[key]?.recentMs.removeAll(keepingCapacity: true)
        }
        history.append(point)
        if history.count > Self.historyLength { history.removeFirst(history.count - Self.historyLength) }
    }

    /// The document for the interval since the last call (or since start), which `reset` then starts afresh.
    public func snapshot(_ state: WorkerState, reset: Bool) -> MetricsSnapshot {
        let now = ContinuousClock.now
        let elapsed = now - intervalStart
        let seconds = max(elapsed.inSeconds, 1e-3)
        var rows: [MetricsSnapshot.AdapterVersion] = []
        var keys = Set(versions.keys)
        var registered: [VersionKey: (state: String, cache: String)] = [:]
        for item in state.registered {
            let key = VersionKey(name: item.name, version: item.version)
            registered[key] = (item.state, item.cache)
            keys.insert(key)
        }
        var inferenceRequests = 0
        for key in keys.sorted(by: { ($0.name, $0.version) < ($1.name, $1.version) }) {
            let figures = versions[key] ?? VersionFigures()
            inferenceRequests += figures.requests
            rows.append(MetricsSnapshot.AdapterVersion(
                name: key.name, version: key.version, state: registered[key]?.state ?? "",
                cache: registered[key]?.cache ?? (key.name.isEmpty ? "resident" : ""),
                requestsTotal: figures.requestsTotal, errorsTotal: figures.errorsTotal,
                requests: figures.requests, perSecond: Double(figures.requests) / seconds, errors: figures.errors,
                latencyMs: Self.latency(of: figures.latenciesMs),
                lastUsed: figures.lastUsed.map { $0.formatted(.iso8601) }))
            let counted = figures.labelsTotal.values.reduce(0, +)
            if counted > 0 {
                rows[rows.count - 1].labelsTotal = figures.labelsTotal
                rows[rows.count - 1].meanConfidence = figures.confidenceSum / Double(counted)
            }
            rows[rows.count - 1].latencyTotalMs = Self.latency(of: figures.lifetimeMs)
            rows[rows.count - 1].shadow = figures.shadow
            if figures.labelChecks > 0 {
                rows[rows.count - 1].labelChecks = figures.labelChecks
                rows[rows.count - 1].labelRechecks = figures.labelRechecks
            }
        }
        let batchCount = state.batches.batches - batchesAtIntervalStart.batches
        let rowCount = state.batches.rows - batchesAtIntervalStart.rows
        var snapshot = MetricsSnapshot(
            worker: state.worker, state: state.state, engine: engine.map { engine in
                var figures = engine
                if figures.precision != Precision.fp32.rawValue { figures.labelRechecks = state.labelRechecks }
                if let merged = state.merged {
                    figures.mergedAdapters = merged.adapters
                    figures.mergedBytes = merged.bytes
                    figures.mergeBudgetBytes = merged.budget
                }
                return figures
            }, at: Date().formatted(.iso8601), intervalSeconds: seconds,
            uptimeSeconds: state.uptimeSeconds, rssBytes: Self.residentBytes(),
            requests: MetricsSnapshot.Requests(
                total: state.requestsTotal, failed: state.requestsFailed, perSecond: Double(inferenceRequests) / seconds,
                inFlight: state.inFlight, queueDepth: state.queueDepth),
            batches: MetricsSnapshot.Batches(
                total: state.batches.batches, meanSize: batchCount > 0 ? Double(rowCount) / Double(batchCount) : 0, maxSize: state.largestBatch),
            cache: MetricsSnapshot.Cache(
                bytes: state.cache.bytes, budgetBytes: state.cacheBudget, hits: state.cache.hits, misses: state.cache.misses,
                evictions: state.cache.evictions, loads: state.cache.loads, loadSecondsTotal: state.cache.loadSeconds),
            adapters: rows, events: events)
        if !routers.isEmpty { snapshot.routers = routers.values.sorted { $0.name < $1.name } }
        if reset {
            intervalStart = now
            batchesAtIntervalStart = state.batches
            for key in versions.keys {
                versions[key]?.requests = 0
                versions[key]?.errors = [:]
                versions[key]?.latenciesMs.removeAll(keepingCapacity: true)
            }
        }
        return snapshot
    }

    /// Resident set size of this process, from /proc/self/statm.
    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    private func counter(name: String, version: String, status: RPCStatus) -> Counter {
        let id = name + "\u{0}" + version + "\u{0}" + status.name
        if let existing = counters[id] { return existing }
        let made = Counter(label: "adapterd_requests_total", dimensions: [("adapter", name), ("version", version), ("status", status.name)], factory: factory)
        counters[id] = made
        return made
    }

    /// The label check's counter `label` for one adapter version.
    private func labelCheckCounter(_ key: VersionKey, _ label: String) -> Counter {
        let id = label + "\u{0}" + key.name + "\u{0}" + key.version
        if let existing = counters[id] { return existing }
        let made = Counter(label: label, dimensions: [("adapter", key.name), ("version", key.version)], factory: factory)
        counters[id] = made
        return made
    }

    private func timer(_ key: VersionKey) -> Metrics.Timer {
        if let existing = timers[key] { return existing }
        let made = Metrics.Timer(label: "adapterd_request_duration_seconds", dimensions: [("adapter", key.name), ("version", key.version)], preferredDisplayUnit: .seconds, factory: factory)
        timers[key] = made
        return made
    }
}
