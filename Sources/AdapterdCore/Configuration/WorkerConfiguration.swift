import AdapterEngine
import AdapterRuntime
import CanaryJudging

/// Everything a worker needs to run.
public struct WorkerConfiguration: Sendable {
    /// Broker URL, `mqtt://host:port`.
    public var brokerURL: String
    /// The worker id in topic names; also the MQTT client id.
    public var workerID: String
    /// Base model directory.
    public var modelDirectory: String
    /// Directory for the worker's own files.
    public var dataDirectory: String
    /// MQTT protocol version of the worker's connection.
    public var protocolVersion: MQTTProtocolChoice = .v5
    /// Seconds the broker keeps the worker's session (and queues QoS 1 requests) while it is away.
    public var sessionExpiry: UInt32 = 3600
    /// QoS 1 requests the broker may have in flight to the worker (MQTT 5 receive maximum).
    public var receiveMaximum = 256
    /// Directories `LoadAdapter` may read adapters from, besides the data directory (which always is one). Paths
    /// elsewhere are refused without being looked at.
    public var adapterRoots: [String] = []
    /// Largest request body accepted; larger ones are answered RESOURCE_EXHAUSTED without being decoded.
    public var maxRequestBytes = 1 << 20
    /// Largest batch the engine runs at once.
    public var maxBatch = BatchExecutor.defaultMaxBatch
    /// The base model's precision (FP32, the exact reference, by default).
    public var precision: Precision = .fp32
    /// INT8: classification rows with a smaller top-two logit margin are answered by an FP32 pass (0: never).
    public var labelCheckFactor: Float = InferenceEngine.defaultLabelCheckFactor
    /// A kernel path to run instead of the best the CPU supports (only lower paths take effect).
    public var kernelPath: KernelPath?
    /// Publish a copy of every inference reply under `…/results/…`.
    public var publishResults = false
    /// When a canary in a rollout is rolled back automatically.
    public var guardPolicy = CanaryThresholds()
    /// Bytes of adapter weights held ready in memory (least recently used are evicted beyond it).
    public var cacheMaxBytes = 256 << 20
    /// Bytes the engine may spend on adapters merged into copies of the layers they change (0: none); a batch whose
    /// rows all use a merged adapter costs what the base model does.
    public var mergeMaxBytes = 64 << 20
    /// How long a session keeps the adapter version its first request got.
    public var affinityTTL: Duration = .seconds(24 * 3600)
    /// Whether a request may name its adapter (otherwise routes decide alone).
    public var allowExplicitAdapter = true
    /// Adapter used for requests that name none; nil gives embeddings.
    public var defaultAdapter: String?
    /// Adapters loaded at start: (name, version, path).
    public var preload: [(name: String, version: String, path: String)] = []
    /// How long a reply is kept to answer duplicates (at least; longer when the request's expiry is longer).
    public var duplicateWindow: Duration = .seconds(60)
    /// Shared-subscription pool this worker also takes requests from (`$share/{pool}/adapterd/v1/pool/infer/#`).
    public var pool: String?
    /// How often the metrics document is published on `adapterd/v1/{worker}/metrics`.
    public var metricsInterval: Duration = .seconds(10)
    /// Refuse pushes without a signature from one of `trustedKeys`.
    public var requireSigned = false
    /// ed25519 public keys (base64, or `.pub` files) whose signatures on pushes are accepted.
    public var trustedKeys: [String] = []
    /// Largest push payload accepted, in bytes.
    public var maxPushBytes: Int64 = 512 << 20
    /// Adapter versions registered at once; loads and pushes of further versions are refused.
    public var maxVersions = 10_000
    /// Labels published in the retained status (`site`, `region`, `hardware`…), for fleet selectors.
    public var labels: [String: String] = [:]
    /// Whether the worker trains (`TrainAdapter`, federated rounds).
    public var trainingEnabled = true
    /// Memory a training on the worker may take (activations, gradients, optimiser state).
    public var trainingMemoryBudgetBytes = 256 << 20
    /// Labelled feedback kept: per name, bytes and names in all.
    public var feedbackLimits = FeedbackLimits()
    /// Longest a training on the worker may run, in seconds.
    public var trainingMaxSeconds = 3600
    /// Unfinished pushes untouched this long are removed.
    public var pushExpiry: Duration = .seconds(24 * 3600)
    /// Hub ids of the base model adapters may declare (`base_model_name_or_path`); others are refused.
    public var baseModelNames = ["sentence-transformers/all-MiniLM-L6-v2"]
    /// Broker user name and password.
    public var username: String?
    public var password: String?
    /// TLS CA file, client certificate and key.
    public var tlsCAFile: String?
    public var tlsCertFile: String?
    public var tlsKeyFile: String?

    public init(brokerURL: String, workerID: String, modelDirectory: String, dataDirectory: String) {
        self.brokerURL = brokerURL
        self.workerID = workerID
        self.modelDirectory = modelDirectory
        self.dataDirectory = dataDirectory
    }
}

/// MQTT protocol version choice for configuration.
public enum MQTTProtocolChoice: String, Sendable {
    case v5 = "5"
    case v311 = "3.1.1"
}
