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
    }

    public struct Batches: Codable, Sendable, Equatable {
        /// Batches run since start, and mean / largest rows per batch over the interval.
        public var total: Int
        public var meanSize: Double
        public var maxSize: Int
    }

    public struct Cache: Codable, Sendable, Equatable {
        public var bytes: Int
        public var budgetBytes: Int
        public var hits: Int
        public var misses: Int
        public var evictions: Int
        public var loads: Int
        public var loadSecondsTotal: Double
    }

    public struct Latency: Codable, Sendable, Equatable {
        public var p50: Double
        public var p95: Double
        public var p99: Double
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
    }

    /// How the engine runs the base model.
    public struct Engine: Codable, Sendable, Equatable {
        /// "fp32" or "int8".
        public var precision: String
        /// The kernel path, e.g. "avx512-vnni".
        public var kernelPath: String

        public init(precision: String, kernelPath: String) {
            self.precision = precision
            self.kernelPath = kernelPath
        }
    }

    public var worker: String
    public var state: String
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
    public func json() -> [UInt8] { sortedJSON(self) }
}
