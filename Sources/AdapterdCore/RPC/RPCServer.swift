import AdapterdAPI
import AdapterdClient
import Logging
import MQTTRPC

/// The transport-facing side of the worker's RPC: takes a request from MQTT, finds its method, decodes it,
/// answers duplicates from the reply cache, refuses expired requests and requests arriving while draining,
/// runs the handler and publishes the reply to the request's reply address (and inference results to the
/// results topic). The rules every method shares live here once.
public struct RPCServer: Sendable {
    /// Publishes one message (QoS 1): the worker's MQTT connection, or a recorder in tests.
    public typealias Publish = @Sendable (_ topic: String, _ payload: [UInt8], _ properties: MQTTProperties) -> Void

    let topics: Topics
    let workerID: String
    /// The method answering inference requests (`…/infer/…` topics).
    let inference: RPCMethod
    /// The methods answering control requests (`…/control/<method>`).
    public let control: MethodTable
    let stats: WorkerStats
    let replies: ReplyCache
    /// Control requests run one at a time, so they never pile up ahead of inference.
    let controlLane = ControlLane()
    let duplicateWindow: Duration
    let publishResults: Bool
    /// Bodies larger than this are refused before decoding.
    let maxRequestBytes: Int
    let publish: Publish
    let logger: Logger

    /// A server answering `inference` and `control` for worker `workerID`.
    public init(
        topics: Topics, workerID: String, inference: RPCMethod, control: MethodTable, stats: WorkerStats, replies: ReplyCache = ReplyCache(),
        duplicateWindow: Duration, publishResults: Bool, maxRequestBytes: Int = 1 << 20, logger: Logger, publish: @escaping Publish
    ) {
        self.maxRequestBytes = maxRequestBytes
        self.topics = topics
        self.workerID = workerID
        self.inference = inference
        self.control = control
        self.stats = stats
        self.replies = replies
        self.duplicateWindow = duplicateWindow
        self.publishResults = publishResults
        self.logger = logger
        self.publish = publish
    }

    /// Answers one request taken from the broker. Messages on topics that are not requests are ignored.
    public func handle(_ message: MQTTMessage) async {
        guard let route = topics.route(message.topic) else { return }
        // A retained request would run again every time the worker subscribes (each restart): never run it.
        guard !message.retain else {
            logger.warning("ignored a retained request; publish requests without the retain flag", metadata: ["topic": "\(message.topic)"])
            return
        }
        let method: RPCMethod?
        let sensorPath: [String]
        switch route {
        case .infer(let context):
            method = inference
            sensorPath = context
        case .control(let name):
            method = control[name]
            sensorPath = []
        }
        var failure: RPCError?
        var call: RPCMethod.Call?
        let detected = RPCEncoding.detect(contentType: message.properties.contentType, payload: message.payload)
        // Failures before the body is understood are answered in JSON.
        let encoding = detected ?? .json
        if message.payload.count > maxRequestBytes {
            failure = RPCError(.resourceExhausted, "the request body is \(message.payload.count) bytes; this worker accepts at most \(maxRequestBytes) (maxRequestBytes)")
        } else if detected == nil {
            failure = RPCError(.invalidArgument, "content type '\(message.properties.contentType ?? "")' is not supported; use application/json or application/x-protobuf")
        } else if let method {
            do {
                call = try method.decode(message.payload, encoding)
            } catch {
                failure = error
            }
        } else if case .control(let name) = route {
            failure = control.unknown(name)
        }
        let address = ReplyAddress.of(message, replyTo: call?.replyTo, correlationID: call?.correlationID)
        let context = RPCContext(message, sensorPath: sensorPath)
        let compute: @Sendable () async -> CachedReply = { [call, failure] in
            let correlationID = address?.correlationID ?? ""
            if let failure {
                await stats.reject()
                return Self.failure(failure, method: method, encoding: encoding, correlationID: correlationID)
            }
            if let deadline = context.deadline, ContinuousClock.now >= deadline {
                await stats.reject()
                return Self.failure(RPCError(.deadlineExceeded, "the request expired before it could run"), method: method, encoding: encoding, correlationID: correlationID)
            }
            if await stats.draining {
                await stats.reject()
                return Self.failure(RPCError(.unavailable, "worker '\(workerID)' is shutting down; retry"), method: method, encoding: encoding, correlationID: correlationID)
            }
            await stats.begin()
            let reply: CachedReply
            if case .control = route {
                reply = await controlLane.run { await call!.run(context) }
            } else {
                reply = await call!.run(context)
            }
            await stats.end(status: reply.status.rawValue)
            return reply
        }
        let reply: CachedReply
        if let key = address?.duplicateKey {
            let expiry = message.properties.messageExpiry.map { Duration.seconds(Int64($0)) } ?? .zero
            reply = await replies.reply(for: key, window: max(duplicateWindow, expiry), compute: compute).reply
        } else {
            reply = await compute()
        }
        if reply.status != .ok {
            logger.debug("request failed", metadata: ["topic": "\(message.topic)", "status": "\(reply.status.name)"])
        }
        if let address, let problem = Self.problem(withReplyTopic: address.topic) {
            logger.warning("reply not sent", metadata: ["topic": "\(message.topic)", "replyTo": "\(address.topic)", "reason": "\(problem)"])
        } else if let address {
            // `worker` tells replies apart when one request reached several workers (pool control).
            var properties = MQTTProperties(
                contentType: encoding.contentType,
                userProperties: [MQTTUserProperty("status", reply.status.name), MQTTUserProperty("worker", workerID)])
            if address.usesProperties { properties.correlationData = address.correlationData }
            publish(address.topic, reply.payload, properties)
        }
        if case .infer(let context) = route, publishResults {
            publish(topics.results(context: context), reply.payload, MQTTProperties(contentType: encoding.contentType, userProperties: [MQTTUserProperty("status", reply.status.name)]))
        }
    }

    /// Why the worker will not publish a reply to `topic`, or nil. Replies never go to `$` topics (the broker's
    /// own), and never into adapterd's request, status and metrics topics (a reply there could act as a request to
    /// another worker); under `adapterd/v1/` only `adapterd/v1/clients/…` is for replies. Wildcards cannot be
    /// published to.
    static func problem(withReplyTopic topic: String) -> String? {
        if topic.isEmpty { return "the reply topic is empty" }
        if topic.hasPrefix("$") { return "reply topics starting with '$' belong to the broker" }
        if topic.contains("+") || topic.contains("#") || topic.contains("\u{0}") { return "reply topics cannot hold wildcards or NUL" }
        if topic.hasPrefix(Topics.prefix + "/"), !topic.hasPrefix(Topics.prefix + "/clients/") {
            return "replies under \(Topics.prefix)/ go to \(Topics.prefix)/clients/…; other topics there are adapterd's own"
        }
        return nil
    }

    /// A failure reply in the method's own reply type (any reply type when the method is unknown: every reply
    /// carries status, error and correlation id in the same fields).
    static func failure(_ error: RPCError, method: RPCMethod?, encoding: RPCEncoding, correlationID: String) -> CachedReply {
        guard let method else { return RPCMethod.failure(error, as: Adapterd_V1_UnloadAdapterReply.self, encoding: encoding, correlationID: correlationID) }
        return method.encodeFailure(error, encoding, correlationID)
    }
}
