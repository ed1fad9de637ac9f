import AdapterFormats
import Foundation

/// The retained status document at `adapterd/v1/{worker}/status`.
public struct WorkerStatus: Codable, Sendable, Equatable {
    /// "online" or "offline".
    public var state: String
    public var worker: String
    public var version: String
    public var model: String
    public var startedAt: String
    /// The base model's precision ("fp32" or "int8"); absent in documents from older workers.
    public var precision: String?
    /// The engine's kernel path (e.g. "avx512-vnni"); absent in documents from older workers.
    public var kernelPath: String?
    /// The worker's labels from its configuration (`site`, `region`, `hardware`…), for fleet selectors.
    public var labels: [String: String]?
    /// The adapter versions it holds, by name; absent in documents from older workers.
    public var adapters: [Holding]?

    /// One adapter name on a worker: its active version and every version it holds.
    public struct Holding: Codable, Sendable, Equatable {
        public var name: String
        public var active: String
        public var versions: [String]

        public init(name: String, active: String, versions: [String]) {
            self.name = name
            self.active = active
            self.versions = versions
        }
    }

    public init(
        state: String, worker: String, version: String, model: String, startedAt: String, precision: String? = nil,
        kernelPath: String? = nil, labels: [String: String]? = nil, adapters: [Holding]? = nil
    ) {
        self.labels = labels
        self.adapters = adapters
        self.state = state
        self.worker = worker
        self.version = version
        self.model = model
        self.startedAt = startedAt
        self.precision = precision
        self.kernelPath = kernelPath
    }

    /// JSON bytes with sorted keys.
    public func json() -> [UInt8] { sortedJSON(self) }
}

/// One adapter lifecycle event, as published on `adapterd/v1/{worker}/events`.
public struct AdapterEvent: Codable, Sendable, Equatable {
    /// Where a training stands (events `training`).
    public struct Training: Codable, Sendable, Equatable {
        public var epoch: Int
        public var step: Int
        public var totalSteps: Int
        /// Mean loss of the last step's batch.
        public var loss: Float

        public init(epoch: Int, step: Int, totalSteps: Int, loss: Float) {
            self.epoch = epoch
            self.step = step
            self.totalSteps = totalSteps
            self.loss = loss
        }
    }

    /// What happened.
    public var event: LifecycleAction
    public var name: String
    public var version: String
    public var actor: String
    public var reason: String
    public var at: String
    /// The progress of a training (events `training` only).
    public var training: Training?

    public init(event: LifecycleAction, name: String, version: String, actor: String, reason: String, at: Date = Date(), training: Training? = nil) {
        self.event = event
        self.name = name
        self.version = version
        self.actor = actor
        self.reason = reason
        self.at = at.formatted(.iso8601)
        self.training = training
    }

    /// JSON bytes with sorted keys.
    public func json() -> [UInt8] { sortedJSON(self) }
}

/// JSON with sorted keys for the worker's own documents. Their only values JSON cannot hold are non-finite
/// numbers, written as the strings "NaN", "Infinity" and "-Infinity", so encoding never fails.
func sortedJSON<T: Encodable>(_ value: T) -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
    do {
        return [UInt8](try encoder.encode(value))
    } catch {
        // Unreachable for these documents' types; an empty object keeps a status publish from taking the worker down.
        return Array("{}".utf8)
    }
}
