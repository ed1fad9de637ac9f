import Foundation

/// The retained status document at `adapterd/v1/{worker}/status`.
public struct WorkerStatus: Codable, Sendable, Equatable {
    /// "online" or "offline".
    public var state: String
    public var worker: String
    public var version: String
    public var model: String
    public var startedAt: String

    public init(state: String, worker: String, version: String, model: String, startedAt: String) {
        self.state = state
        self.worker = worker
        self.version = version
        self.model = model
        self.startedAt = startedAt
    }

    /// JSON bytes with sorted keys.
    public func json() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Encoding five strings cannot fail.
        return [UInt8](try! encoder.encode(self))
    }
}
