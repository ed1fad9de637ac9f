import AdapterdAPI
import AdapterdClient
import Logging
import MQTTRPC

/// The transport-facing side of the worker's RPC: takes a request from MQTT, finds its method and decodes it,
/// passes it through the stages every method shares (`stages`, in order: repeats answered from the reply cache,
/// undecodable bodies refused, expired requests refused, requests refused while draining, statistics, the control
/// lane), runs the handler and publishes the reply to the request's reply address (and inference results to the
/// results topic).
public struct RPCServer: Sendable {

    let topics: Topics
    let workerID: String
    /// The method answering inference requests (`…/infer/…` topics).
    let inference: RPCMethod
    /// The methods answering control requests (`…/control/<method>`).
    public let control: MethodTable
    /// The rules every request passes before its handler, outermost first.
    let stages: [any RPCStage]
    let publishResults: Bool
    /// Bodies larger than this are refused before decoding.
    let maxRequestBytes: Int
    /// Where replies and results go.
    let transport: any RPCTransport
    let logger: Logger

    /// A server answering `inference` and `control` for worker `workerID`.
    public init(
        topics: Topics, workerID: String, inference: RPCMethod, control: MethodTable, stats: WorkerStats, replies: ReplyCache = ReplyCache(),
        duplicateWindow: Duration, publishResults: Bool, maxRequestBytes: Int = 1 << 20, logger: Logger, transport: any RPCTransport
    ) {
        self.maxRequestBytes = maxRequestBytes
        self.topics = topics
        self.workerID = workerID
        self.inference = inference
        self.control = control
        stages = [
            DuplicateStage(replies: replies, window: duplicateWindow),
            RefusalStage(stats: stats),
            ExpiryStage(stats: stats),
            DrainStage(stats: stats, workerID: workerID),
            StatsStage(stats: stats),
            ControlLaneStage(lane: ControlLane()),
        ]
        self.publishResults = publishResults
        self.logger = logger
        self.transport = transport
    }

    /// Answers one request taken from the broker. Messages on topics that are not requests are ignored.
    public func handle(_ message: MQTTMessage) async {
        guard let route = topics.route(message.topic) else { return }
        // A retained request would run again every time the worker subscribes (each restart): never run it.
        guard !message.retain else {
            logger.warning("ignored a retained request; publish requests without the retain flag", metadata: ["topic": "\(message.topic)"])
            return
        }
        let (invocation, address) = decode(message, route: route)
        let reply = await Self.run(invocation, through: stages[...])
        if reply.status != .ok {
            logger.debug("request failed", metadata: ["topic": "\(message.topic)", "status": "\(reply.status.name)"])
        }
        if let address, let problem = Self.problem(withReplyTopic: address.topic) {
            logger.warning("reply not sent", metadata: ["topic": "\(message.topic)", "replyTo": "\(address.topic)", "reason": "\(problem)"])
        } else if let address {
            // `worker` tells replies apart when one request reached several workers (pool control).
            var properties = MQTTProperties(
                contentType: invocation.encoding.contentType,
                userProperties: [MQTTUserProperty("status", reply.status.name), MQTTUserProperty("worker", workerID)])
            if address.usesProperties { properties.correlationData = address.correlationData }
            transport.send(address.topic, payload: reply.payload, properties: properties)
        }
        if case .infer(let context) = route, publishResults {
            transport.send(
                topics.results(context: context), payload: reply.payload,
                properties: MQTTProperties(contentType: invocation.encoding.contentType, userProperties: [MQTTUserProperty("status", reply.status.name)]))
        }
    }

    /// Finds `message`'s method and decodes its body (or says why it cannot), and where its reply goes.
    func decode(_ message: MQTTMessage, route: Topics.Route) -> (RPCInvocation, ReplyAddress?) {
        let method: RPCMethod?
        let sensorPath: [String]
        let lane: RPCInvocation.Lane
        switch route {
        case .infer(let context):
            (method, sensorPath, lane) = (inference, context, .inference)
        case .control(let name):
            (method, sensorPath, lane) = (control[name], [], .control)
        }
        var refusal: RPCError?
        var call: RPCMethod.Call?
        let detected = RPCEncoding.detect(contentType: message.properties.contentType, payload: message.payload)
        if message.payload.count > maxRequestBytes {
            refusal = RPCError(.resourceExhausted, "the request body is \(message.payload.count) bytes; this worker accepts at most \(maxRequestBytes) (maxRequestBytes)")
        } else if detected == nil {
            refusal = RPCError(.invalidArgument, "content type '\(message.properties.contentType ?? "")' is not supported; use application/json or application/x-protobuf")
        } else if let method {
            do {
                call = try method.decode(message.payload, detected ?? .json)
            } catch {
                refusal = error
            }
        } else if case .control(let name) = route {
            refusal = control.unknown(name)
        }
        let address = ReplyAddress.of(message, replyTo: call?.replyTo, correlationID: call?.correlationID)
        let invocation = RPCInvocation(
            method: method, call: call, refusal: refusal, lane: lane, context: RPCContext(message, sensorPath: sensorPath),
            // Failures before the body is understood are answered in JSON.
            encoding: detected ?? .json, correlationID: address?.correlationID ?? "", duplicateKey: address?.duplicateKey)
        return (invocation, address)
    }

    /// Passes `invocation` through `stages` in order, then to its handler.
    static func run(_ invocation: RPCInvocation, through stages: ArraySlice<any RPCStage>) async -> CachedReply {
        guard let stage = stages.first else {
            // The refusal stage answers every request without a call before this point.
            guard let call = invocation.call else { return invocation.failure(RPCError(.internal, "the request has no handler")) }
            return await call.run(invocation.context)
        }
        let rest = stages.dropFirst()
        return await stage.handle(invocation) { await run($0, through: rest) }
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
}
