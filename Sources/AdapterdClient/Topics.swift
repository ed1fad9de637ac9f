/// adapterd's MQTT topic layout for one worker: `adapterd/v1/{worker}/…`.
public struct Topics: Sendable {
    /// The prefix every topic starts with.
    public static let prefix = "adapterd/v1"

    /// The worker id the topics belong to.
    public let worker: String
    /// The pool the worker also serves (`--pool`), if any.
    public let pool: String?

    /// The worker id under which clients address a pool (`adapterd/v1/pool/…`); no worker may use it.
    public static let poolWorker = "pool"

    public init(worker: String, pool: String? = nil) {
        self.worker = worker
        self.pool = pool
    }

    /// The shared subscription for the pool's inference requests: each request goes to one worker of the pool.
    public var poolInferFilter: String? { pool.map { "$share/\($0)/\(Self.prefix)/\(Self.poolWorker)/infer/#" } }
    /// The pool's control requests: a normal subscription, so every worker of the pool gets each one.
    public var poolControlFilter: String? { pool.map { _ in "\(Self.prefix)/\(Self.poolWorker)/control/+" } }

    /// `adapterd/v1/{worker}/infer`; requests also arrive on any topic below it.
    public var infer: String { "\(Self.prefix)/\(worker)/infer" }
    /// The subscription filter for inference requests: `…/infer/#` matches `…/infer` itself too (and a second
    /// filter for it would make the broker deliver such requests twice).
    public var inferFilter: String { infer + "/#" }
    /// `adapterd/v1/{worker}/control/{method}`.
    public func control(_ method: String) -> String { "\(Self.prefix)/\(worker)/control/\(method)" }
    /// The subscription filter for control requests.
    public var controlFilter: String { "\(Self.prefix)/\(worker)/control/+" }
    /// Adapter lifecycle events (loaded, refused, activated, rolled back, unloaded).
    public var events: String { "\(Self.prefix)/\(worker)/events" }
    /// Periodic metrics documents (retained: a new subscriber sees the latest at once).
    public var metrics: String { "\(Self.prefix)/\(worker)/metrics" }
    /// Retained worker status.
    public var status: String { "\(Self.prefix)/\(worker)/status" }
    /// Copies of replies for subscribers that did not ask (`…/results/{levels after infer}`).
    public func results(context: [String]) -> String {
        ([Self.prefix, worker, "results"] + context).joined(separator: "/")
    }

    /// What a request topic asks for.
    public enum Route: Sendable, Equatable {
        /// Inference, with the topic levels after `infer` (e.g. sensor type and id).
        case infer(context: [String])
        /// A control method by name.
        case control(method: String)
    }

    /// The route of `topic`, or nil when it is not one of this worker's request topics.
    public func route(_ topic: String) -> Route? {
        let levels = topic.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard levels.count >= 4, levels[0] == "adapterd", levels[1] == "v1",
              levels[2] == worker || (pool != nil && levels[2] == Self.poolWorker) else { return nil }
        switch levels[3] {
        case "infer": return .infer(context: Array(levels.dropFirst(4)))
        case "control" where levels.count == 5: return .control(method: levels[4])
        default: return nil
        }
    }
}
