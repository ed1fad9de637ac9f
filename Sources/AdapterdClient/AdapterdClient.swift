import AdapterdAPI
import Foundation
import MQTTRPC
import SwiftProtobuf

/// A client of adapterd's RPC methods over MQTT (what adapterctl and the tests use).
///
/// MQTT 5 requests carry a Response Topic and Correlation Data; with MQTT 3.1.1 the same go in the body as
/// `replyTo` / `correlationId`. Replies are matched to callers by correlation.
public final class AdapterdClient: Sendable {
    public let topics: Topics
    public let encoding: RPCEncoding
    public let client: MQTTClient
    private let replyTopic: String
    private let pending = PendingReplies()
    private let reader: Task<Void, Never>

    /// Connects to `brokerURL` to talk to worker `worker`, logging in as `username` when the broker wants it, and
    /// checking the broker's certificate against `tlsCAFile` (`mqtts://` uses the system's CAs without one).
    /// Replies come on `adapterd/v1/clients/{client id}/replies`, which the shipped ACL lets each client read.
    public init(
        brokerURL: String, worker: String, encoding: RPCEncoding = .json, protocolVersion: MQTTOptions.ProtocolVersion = .v5,
        username: String? = nil, password: String? = nil, tlsCAFile: String? = nil, timeout: Duration = .seconds(5)
    ) async throws {
        let id = "adapterctl-" + UUID().uuidString.prefix(8).lowercased()
        var options = try MQTTOptions.parse(url: brokerURL, clientID: id)
        options.protocolVersion = protocolVersion
        options.username = username
        options.password = password
        if let tlsCAFile { options.tls = MQTTOptions.TLS(caFile: tlsCAFile) }
        topics = Topics(worker: worker)
        self.encoding = encoding
        replyTopic = "adapterd/v1/clients/\(id)/replies"
        client = try MQTTClient(options: options)
        try client.subscribe(replyTopic, qos: 1)
        try await client.connect(timeout: timeout)
        let messages = client.messages
        let pending = pending
        reader = Task {
            for await message in messages {
                pending.deliver(message)
            }
        }
    }

    deinit {
        reader.cancel()
    }

    /// Disconnects.
    public func close() {
        client.disconnect()
        client.finishMessages()
    }

    /// The request's body and properties, addressed for the reply: MQTT 5 response topic and correlation data, or
    /// for MQTT 3.1.1 `replyTo` / `correlationId` in the body.
    private func addressed<Request: RPCRequestMessage>(_ request: Request, correlation: String, messageExpiry: UInt32?) -> ([UInt8], MQTTProperties) {
        var request = request
        var properties = MQTTProperties(contentType: encoding.contentType, messageExpiry: messageExpiry)
        if client.options.protocolVersion == .v5 {
            properties.responseTopic = replyTopic
            properties.correlationData = Array(correlation.utf8)
        } else {
            request.replyTo = replyTopic
            request.correlationID = correlation
        }
        return (RPCCodec.encode(request, encoding: encoding), properties)
    }

    /// Sends `request` to `topic` and waits for its reply; throws `MQTTError.timedOut` when none comes.
    public func call<Request: RPCRequestMessage, Reply: RPCReplyMessage>(
        _ topic: String, _ request: Request, as replyType: Reply.Type, timeout: Duration = .seconds(10),
        messageExpiry: UInt32? = nil, correlation: String? = nil
    ) async throws -> Reply {
        let correlation = correlation ?? UUID().uuidString
        let (payload, sent) = addressed(request, correlation: correlation, messageExpiry: messageExpiry)
        let message = try await pending.wait(for: correlation, timeout: timeout) {
            try self.client.publish(topic, payload: payload, qos: 1, properties: sent)
        }
        let replyEncoding = RPCEncoding.detect(contentType: message.properties.contentType, payload: message.payload) ?? encoding
        return try RPCCodec.decode(Reply.self, from: message.payload, encoding: replyEncoding)
    }

    /// Sends `request` to `topic` once and gathers every reply that arrives within `timeout`, stopping early once
    /// `expecting` have come: what a command to a pool's control topic gets back (one reply per worker).
    public func callAll<Request: RPCRequestMessage, Reply: RPCReplyMessage>(
        _ topic: String, _ request: Request, as replyType: Reply.Type, expecting: Int, timeout: Duration = .seconds(10)
    ) async throws -> [(worker: String, reply: Reply)] {
        let correlation = UUID().uuidString
        let (payload, properties) = addressed(request, correlation: correlation, messageExpiry: nil)
        let replies = pending.collect(correlation)
        defer { pending.stopCollecting(correlation) }
        try client.publish(topic, payload: payload, qos: 1, properties: properties)
        var results: [(worker: String, reply: Reply)] = []
        let pending = pending
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                try? await Task.sleep(for: timeout)
                pending.stopCollecting(correlation)
            }
            for await message in replies {
                let replyEncoding = RPCEncoding.detect(contentType: message.properties.contentType, payload: message.payload) ?? encoding
                if let reply = try? RPCCodec.decode(Reply.self, from: message.payload, encoding: replyEncoding) {
                    results.append((message.properties.userProperty("worker") ?? "?", reply))
                }
                if results.count >= expecting { break }
            }
            group.cancelAll()
        }
        return results
    }

    /// Infer on this client's worker.
    public func infer(_ request: Adapterd_V1_InferRequest, subtopic: String? = nil, timeout: Duration = .seconds(10)) async throws -> Adapterd_V1_InferReply {
        try await call(subtopic.map { topics.infer + "/" + $0 } ?? topics.infer, request, as: Adapterd_V1_InferReply.self, timeout: timeout)
    }

    /// A control method on this client's worker.
    public func control<Request, Reply>(_ method: AdapterdMethod<Request, Reply>, _ request: Request, timeout: Duration = .seconds(10)) async throws -> Reply {
        try await call(topics.control(method.name), request, as: Reply.self, timeout: timeout)
    }
}

/// Callers waiting for replies, by correlation. A class with a lock: the reader task and callers share it.
final class PendingReplies: @unchecked Sendable {
    private let lock = NSLock()
    private var waiting: [String: CheckedContinuation<MQTTMessage, any Error>] = [:]
    private var collectors: [String: AsyncStream<MQTTMessage>.Continuation] = [:]

    /// Every reply with correlation `key`, until `stopCollecting(key)`.
    func collect(_ key: String) -> AsyncStream<MQTTMessage> {
        let (stream, continuation) = AsyncStream.makeStream(of: MQTTMessage.self)
        lock.withLock { collectors[key] = continuation }
        return stream
    }

    func stopCollecting(_ key: String) {
        lock.withLock { collectors.removeValue(forKey: key) }?.finish()
    }

    func deliver(_ message: MQTTMessage) {
        let key: String?
        if let data = message.properties.correlationData {
            key = String(decoding: data, as: UTF8.self)
        } else if let body = try? Adapterd_V1_UnloadAdapterReply(jsonUTF8Bytes: message.payload, options: Self.lenient) {
            key = body.correlationID
        } else {
            key = (try? Adapterd_V1_UnloadAdapterReply(serializedBytes: message.payload))?.correlationID
        }
        guard let key else { return }
        let (single, collector) = lock.withLock { (waiting.removeValue(forKey: key), collectors[key]) }
        single?.resume(returning: message)
        collector?.yield(message)
    }

    static let lenient: JSONDecodingOptions = {
        var options = JSONDecodingOptions()
        options.ignoreUnknownFields = true
        return options
    }()

    func wait(for key: String, timeout: Duration, send: @escaping @Sendable () throws -> Void) async throws -> MQTTMessage {
        try await withThrowingTaskGroup(of: MQTTMessage?.self) { group in
            group.addTask {
                try await withCheckedThrowingContinuation { continuation in
                    self.lock.withLock { self.waiting[key] = continuation }
                    do {
                        try send()
                    } catch {
                        self.lock.withLock { self.waiting.removeValue(forKey: key) }?.resume(throwing: error)
                    }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                self.lock.withLock { self.waiting.removeValue(forKey: key) }?.resume(throwing: MQTTError.timedOut(operation: "waiting for the reply"))
                return nil
            }
            while let result = try await group.next() {
                if let message = result {
                    group.cancelAll()
                    return message
                }
            }
            throw MQTTError.timedOut(operation: "waiting for the reply")
        }
    }
}
