import AdapterdClient
import AdapterFormats
import Foundation
import MQTTRPC

/// The fleet as its retained topics show it: every worker's status (labels, adapter versions, precision) and its
/// latest metrics document. One MQTT connection, subscribed to `adapterd/v1/+/status` and `…/+/metrics`.
/// A class with a lock: its reader task and the controller share what arrived.
public final class FleetWatcher: @unchecked Sendable {
    private let client: MQTTClient
    private let lock = NSLock()
    private var statuses: [String: WorkerStatus] = [:]
    private var documents: [String: MetricsSnapshot] = [:]
    private var reader: Task<Void, Never>?

    /// Connects with `options`, subscribes, and collects until `close`.
    public init(options: MQTTOptions) async throws {
        client = try MQTTClient(options: options)
        try await client.connect()
        let messages = client.messages
        reader = Task { [weak self] in
            for await message in messages { self?.take(message) }
        }
        try await client.subscribe("\(Topics.prefix)/+/status", qos: 1, acknowledgedWithin: .seconds(10))
        try await client.subscribe("\(Topics.prefix)/+/metrics", qos: 0, acknowledgedWithin: .seconds(10))
    }

    /// Takes a status or metrics document only when the topic names a possible worker (a valid id, not the pool's
    /// reserved one) and the document names that same worker: anyone may publish a retained message under a topic
    /// of their choosing, so a document claiming another worker's id is ignored.
    private func take(_ message: MQTTMessage) {
        let parts = message.topic.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return }
        let worker = String(parts[2])
        guard Self.isWorkerID(worker) else { return }
        let payload = Data(message.payload)
        if parts[3] == "status", let status = try? JSONDecoder().decode(WorkerStatus.self, from: payload), status.worker == worker {
            lock.withLock { statuses[worker] = status }
        } else if parts[3] == "metrics", let document = try? JSONDecoder().decode(MetricsSnapshot.self, from: payload), document.worker == worker {
            lock.withLock { documents[worker] = document }
        }
    }

    /// Whether `id` can be a worker's: a valid name that is not the pool's reserved topic level.
    static func isWorkerID(_ id: String) -> Bool {
        AdapterName.problem(with: id) == nil && id != Topics.poolWorker
    }

    /// Every worker seen, by id.
    public var workers: [WorkerStatus] { lock.withLock { statuses.values.sorted { $0.worker < $1.worker } } }

    /// The latest status of `worker`.
    public func status(of worker: String) -> WorkerStatus? { lock.withLock { statuses[worker] } }

    /// The latest metrics document of `worker`.
    public func metrics(of worker: String) -> MetricsSnapshot? { lock.withLock { documents[worker] } }

    /// The online workers `selector` takes, once the retained statuses have had `settle` to arrive.
    public func discover(_ selector: FleetSelector, settle: Duration = .seconds(1)) async throws -> [WorkerStatus] {
        try await Task.sleep(for: settle)
        return workers.filter { $0.state == "online" && selector.matches($0) }
    }

    /// Disconnects.
    public func close() {
        client.disconnect()
        client.finishMessages()
        reader?.cancel()
    }
}
