import Foundation

/// What a worker publishes on `adapterd/v1/{worker}/metrics` and serves at `/api/metrics`: one interval's figures
/// plus running totals. Field names and units are documented in the README ("Metrics").
public struct MetricsSnapshot: Codable, Sendable, Equatable {
    public struct Requests: Codable, Sendable, Equatable {
        /// Requests answered since start (all methods), and those not OK.
        public var total: Int
        public var failed: Int
        /// Inference requests per second over the interval.
        public var perSecond: Double
        public var inFlight: Int
        /// Rows waiting for the engine.
        public var queueDepth: Int

        /// Assembles the figures (the worker builds these; clients decode them).
        public init(total: Int, failed: Int, perSecond: Double, inFlight: Int, queueDepth: Int) {
            self.total = total
            self.failed = failed
            self.perSecond = perSecond
            self.inFlight = inFlight
            self.queueDepth = queueDepth
        }
    }

    public struct Batches: Codable, Sendable, Equatable {
        /// Batches run since start, and mean / largest rows per batch over the interval.
        public var total: Int
        public var meanSize: Double
        public var maxSize: Int

        /// Assembles the figures (the worker builds these; clients decode them).
        public init(total: Int, meanSize: Double, maxSize: Int) {
            self.total = total
            self.meanSize = meanSize
            self.maxSize = maxSize
        }
    }

    public struct Cache: Codable, Sendable, Equatable {
        public var bytes: Int
        public var budgetBytes: Int
        public var hits: Int
        public var misses: Int
        public var evictions: Int
        public var loads: Int
        public var loadSecondsTotal: Double

        /// Assembles the figures (the worker builds these; clients decode them).
        public init(bytes: Int, budgetBytes: Int, hits: Int, misses: Int, evictions: Int, loads: Int, loadSecondsTotal: Double) {
            self.bytes = bytes
            self.budgetBytes = budgetBytes
            self.hits = hits
            self.misses = misses
            self.evictions = evictions
            self.loads = loads
            self.loadSecondsTotal = loadSecondsTotal
        }
    }

    public struct Latency: Codable, Sendable, Equatable {
        public var p50: Double
        public var p95: Double
        public var p99: Double

        /// Assembles the figures (the worker builds these; clients decode them).
        public init(p50: Double, p95: Double, p99: Double) {
            self.p50 = p50
            self.p95 = p95
            self.p99 = p99
        }
    }

    /// One adapter version (name "" is the base model alone).
    public struct AdapterVersion: Codable, Sendable, Equatable {
        public var name: String
        public var version: String
        /// active, staged, retired or failed ("" for the base model).
        public var state: String
        /// resident (in memory), pinned, or cold (on disk only).
        public var cache: String
        /// Inference requests since start, and errors by status name since start.
        public var requestsTotal: Int
        public var errorsTotal: [String: Int]
        /// Over the interval: requests, requests per second, errors by status name, latency in milliseconds.
        public var requests: Int
        public var perSecond: Double
        public var errors: [String: Int]
        public var latencyMs: Latency?
        /// When it last served a request (ISO 8601), if ever.
        public var lastUsed: String?
        /// Since start: requests by predicted label, the mean top-1 probability of those, and latency (a bounded
        /// sample) — what a fleet rollout compares between versions. Absent in documents from older workers.
        public var labelsTotal: [String: Int]?
        public var meanConfidence: Double?
        public var latencyTotalMs: Latency?
        /// Since start, on an INT8 worker: rows the label check looked at, and those of them answered in FP32
        /// (re-checked near a decision, or sent there because most of the version's rows were). Absent without any.
        public var labelChecks: Int?
        public var labelRechecks: Int?
        /// Since start: shadow comparisons with the version this one replaced (absent without any).
        public var shadow: Shadow?

        /// Assembles the figures (the worker builds these; clients decode them).
        public init(name: String, version: String, state: String, cache: String, requestsTotal: Int, errorsTotal: [String: Int], requests: Int, perSecond: Double, errors: [String: Int], latencyMs: Latency?, lastUsed: String?) {
            self.name = name
            self.version = version
            self.state = state
            self.cache = cache
            self.requestsTotal = requestsTotal
            self.errorsTotal = errorsTotal
            self.requests = requests
            self.perSecond = perSecond
            self.errors = errors
            self.latencyMs = latencyMs
            self.lastUsed = lastUsed
        }
    }

    /// A version's shadow comparisons with the version it replaced: requests it served that also ran there, off the
    /// reply path.
    public struct Shadow: Codable, Sendable, Equatable {
        /// The replaced version.
        public var against: String
        /// Comparisons made; those with labels on both sides, and those whose labels agreed.
        public var compared = 0
        public var labelled = 0
        public var agreed = 0
        /// Sampled requests dropped (the comparison queue was full), and comparisons that could not run.
        public var dropped = 0
        public var failed = 0
        /// Classifiers: the largest |logit difference| seen, and the sum of each comparison's largest (for the mean).
        public var maxAbsLogitDelta: Double?
        public var sumMaxAbsLogitDelta = 0.0
        /// Classifiers: the sum of the top-1 probability changes (new − old), for the mean.
        public var sumConfidenceChange = 0.0
        /// Embeddings: the lowest cosine seen and the sum of cosines.
        public var minCosine: Double?
        public var sumCosine = 0.0

        /// No comparisons yet with `against`.
        public init(against: String) { self.against = against }

        /// The share of labelled comparisons whose labels agreed.
        public var agreement: Double? { labelled > 0 ? Double(agreed) / Double(labelled) : nil }
    }

    /// How the engine runs the base model.
    public struct Engine: Codable, Sendable, Equatable {
        /// "fp32" or "int8".
        public var precision: String
        /// The kernel path, e.g. "avx512-vnni".
        public var kernelPath: String
        /// INT8: rows answered from the FP32 re-check of near ties since start.
        public var labelRechecks: Int?
        /// Adapters merged into copies of the layers they change now (their uniform batches run at the base
        /// model's cost), the bytes those copies hold and the budget for them; absent when merging is off.
        public var mergedAdapters: Int?
        public var mergedBytes: Int?
        public var mergeBudgetBytes: Int?

        public init(precision: String, kernelPath: String) {
            self.precision = precision
            self.kernelPath = kernelPath
        }
    }

    /// One input router's decisions since the worker started.
    public struct Router: Codable, Sendable, Equatable {
        public var name: String
        /// Requests whose adapter the router chose, by adapter.
        public var decisions: [String: Int]
        /// Requests where its confidence was below the route's minimum and the route's adapter served.
        public var fallbacks: Int
        /// Mean time spent routing one request, in milliseconds.
        public var meanMs: Double

        public init(name: String, decisions: [String: Int], fallbacks: Int, meanMs: Double) {
            self.name = name
            self.decisions = decisions
            self.fallbacks = fallbacks
            self.meanMs = meanMs
        }
    }

    public var worker: String
    public var state: String
    /// Input routers' decisions; absent in documents from older workers.
    public var routers: [Router]?
    /// Absent in documents from older workers.
    public var engine: Engine?
    public var at: String
    public var intervalSeconds: Double
    public var uptimeSeconds: Double
    public var rssBytes: Int
    public var requests: Requests
    public var batches: Batches
    public var cache: Cache
    public var adapters: [AdapterVersion]
    /// The most recent lifecycle events, newest last.
    public var events: [AdapterEvent]

    /// Compact JSON with sorted keys.
    /// Assembles the figures (the worker builds these; clients decode them).
    public init(worker: String, state: String, engine: Engine?, at: String, intervalSeconds: Double, uptimeSeconds: Double, rssBytes: Int, requests: Requests, batches: Batches, cache: Cache, adapters: [AdapterVersion], events: [AdapterEvent]) {
        self.worker = worker
        self.state = state
        self.engine = engine
        self.at = at
        self.intervalSeconds = intervalSeconds
        self.uptimeSeconds = uptimeSeconds
        self.rssBytes = rssBytes
        self.requests = requests
        self.batches = batches
        self.cache = cache
        self.adapters = adapters
        self.events = events
    }

    public func json() -> [UInt8] { sortedJSON(self) }
}
