import CanaryJudging

/// Every setting adapterd reads, in the order README lists them.
public enum Settings {
    public static let broker = Setting(
        "broker", flag: "broker", environment: "ADAPTERD_BROKER", defaultDescription: "embedded mosquitto",
        "broker URL `mqtt://host:port` or `mqtts://host:port` (TLS)")
    public static let labels = Setting(
        "labels", flag: "label", environment: "ADAPTERD_LABELS", shape: .list, defaultDescription: "none", valueName: "KEY=VALUE",
        "labels in the retained status (`site=lab`), for fleet selectors")
    public static let workerID = Setting(
        "workerId", flag: "worker-id", environment: "ADAPTERD_WORKER_ID", defaultDescription: "host name",
        "id in topic names and MQTT client id (`pool` is reserved)")
    public static let model = Setting(
        "model", flag: "model", environment: "ADAPTERD_MODEL", default: "models/all-MiniLM-L6-v2", "base model directory")
    public static let dataDir = Setting(
        "dataDir", flag: "data-dir", environment: "ADAPTERD_DATA_DIR", default: "data",
        "registry, adapter store, pushes, embedded broker")
    public static let mqttVersion = Setting(
        "mqttVersion", flag: "mqtt-version", environment: "ADAPTERD_MQTT_VERSION", default: "5",
        "MQTT protocol version of the worker's connection: `5` or `3.1.1`")
    public static let maxBatch = Setting(
        "maxBatch", flag: "max-batch", environment: "ADAPTERD_MAX_BATCH", default: String(BatchExecutor.defaultMaxBatch), "largest engine batch")
    public static let precision = Setting(
        "precision", flag: "precision", environment: "ADAPTERD_PRECISION", default: "fp32",
        "base model precision: `fp32` (exact), `int8`, or `bf16` (CPUs with AVX-512 BF16 or AMX)")
    public static let labelCheckFactor = Setting(
        "labelCheckFactor", flag: "label-check-factor", environment: "ADAPTERD_LABEL_CHECK_FACTOR", default: "4",
        "INT8 and BF16: classification rows closer to a decision than this many times the adapter's measured error in a pass are answered by a more exact one (BF16 where the CPU has it, then FP32; `0`: never)")
    public static let cpuPath = Setting(
        "cpuPath", flag: "cpu-path", environment: "ADAPTERD_CPU_PATH", defaultDescription: "the CPU's best",
        "a lower kernel path: `portable`, `avx2`, `avx2-vnni`, `avx512`, `avx512-vnni`, `avx512-bf16`, `amx`")
    public static let cacheMaxBytes = Setting(
        "cacheMaxBytes", flag: "cache-max-bytes", environment: "ADAPTERD_CACHE_MAX_BYTES", default: "268435456",
        "adapter cache budget in bytes")
    public static let mergeMaxBytes = Setting(
        "mergeMaxBytes", flag: "merge-max-bytes", environment: "ADAPTERD_MERGE_MAX_BYTES", default: "67108864",
        "memory for adapters merged into copies of the layers they change, so that batches of one adapter run at the base model's speed (`0`: never merge)")
    public static let maxRequestBytes = Setting(
        "maxRequestBytes", flag: "max-request-bytes", environment: "ADAPTERD_MAX_REQUEST_BYTES", default: "1048576",
        "largest request body; larger ones get `RESOURCE_EXHAUSTED` unread")
    public static let adapters = Setting(
        "adapters", flag: "adapter", environment: "ADAPTERD_ADAPTERS", shape: .list, defaultDescription: "none",
        valueName: "NAME[@VERSION]=DIR",
        "adapters loaded at start (file: `{name, version, path}` entries; version defaults to `v1`)")
    public static let defaultAdapter = Setting(
        "defaultAdapter", flag: "default-adapter", environment: "ADAPTERD_DEFAULT_ADAPTER",
        defaultDescription: "none (embeddings)", "adapter for requests no route matches")
    public static let results = Setting(
        "results", flag: "results", environment: "ADAPTERD_RESULTS", shape: .flag, default: "false",
        "copy inference replies to `…/results/…`")
    public static let http = Setting(
        "http", flag: "http", environment: "ADAPTERD_HTTP", defaultDescription: "off", valueName: "HOST:PORT",
        "HTTP listener for `/metrics`, `/healthz`, `/readyz`, the dashboard")
    public static let pool = Setting(
        "pool", flag: "pool", environment: "ADAPTERD_POOL", defaultDescription: "none", "shared-subscription pool name")
    public static let metricsInterval = Setting(
        "metrics.interval", flag: "metrics-interval", environment: "ADAPTERD_METRICS_INTERVAL", default: "10",
        "seconds between metrics documents (at least 1)")
    public static let guardMinRequests = Setting(
        "rolloutGuard.minRequests", default: String(CanaryThresholds().minRequests), "requests a canary serves before the guard judges it")
    public static let guardMaxErrorRateIncrease = Setting(
        "rolloutGuard.maxErrorRateIncrease", default: String(CanaryThresholds().maxErrorRateIncrease), "error-rate increase over the stable version that rolls back")
    public static let guardMaxLatencyRatio = Setting(
        "rolloutGuard.maxLatencyRatio", default: String(CanaryThresholds().maxLatencyRatio), "p95 latency ratio to the stable version that rolls back")
    public static let requireSigned = Setting(
        "security.requireSigned", flag: "require-signed", environment: "ADAPTERD_REQUIRE_SIGNED", shape: .flag,
        default: "false", "refuse unsigned pushes")
    public static let trustedKeys = Setting(
        "security.trustedKeys", flag: "trusted-key", environment: "ADAPTERD_TRUSTED_KEYS", shape: .list,
        defaultDescription: "none", "ed25519 public keys whose signed pushes are accepted: base64 or `.pub` files")
    public static let maxPushBytes = Setting("security.maxPushBytes", default: "536870912", "largest push in bytes")
    public static let trainingEnabled = Setting(
        "training.enabled", flag: "training", environment: "ADAPTERD_TRAINING", default: "true",
        "train on the worker: `TrainAdapter` and federated rounds (off: both refused with `FAILED_PRECONDITION`)")
    public static let trainingMemoryBudget = Setting(
        "training.memoryBudgetBytes", default: "268435456",
        "memory a `TrainAdapter` training may take; larger ones get `RESOURCE_EXHAUSTED`")
    public static let trainingMaxSeconds = Setting(
        "training.maxSeconds", default: "3600", "longest a `TrainAdapter` training may run; past it, it stops and stages nothing")
    public static let feedbackMaxBytes = Setting(
        "limits.feedbackMaxBytes", default: "67108864", "bytes of `Feedback` texts and labels kept over all names; past it `RESOURCE_EXHAUSTED`")
    public static let feedbackMaxNames = Setting(
        "limits.feedbackMaxNames", default: "256", "names holding `Feedback` at once; a new name past it gets `RESOURCE_EXHAUSTED`")
    public static let maxVersions = Setting(
        "limits.maxVersions", default: "10000", "adapter versions registered at once; loads and pushes past it get `RESOURCE_EXHAUSTED`")
    public static let adapterRoots = Setting(
        "security.adapterRoots", flag: "adapter-root", environment: "ADAPTERD_ADAPTER_ROOTS", shape: .list,
        defaultDescription: "none (the data directory only)", "directories `LoadAdapter` may read from")
    public static let baseModelNames = Setting(
        "baseModelNames", shape: .list, default: "sentence-transformers/all-MiniLM-L6-v2",
        "hub ids adapters may declare as their base")
    public static let username = Setting(
        "username", flag: "username", environment: "ADAPTERD_USERNAME", defaultDescription: "none", "broker user name")
    public static let password = Setting(
        "password", flag: "password", environment: "ADAPTERD_PASSWORD", defaultDescription: "none",
        "broker password (shows in `ps`: prefer `passwordFile`)")
    public static let passwordFile = Setting(
        "passwordFile", flag: "password-file", environment: "ADAPTERD_PASSWORD_FILE", defaultDescription: "none",
        "the broker password from a file's first line")
    public static let tlsCA = Setting(
        "tls.ca", flag: "tls-ca", environment: "ADAPTERD_TLS_CA", defaultDescription: "the system's CAs with `mqtts://`",
        "CA file for the broker's certificate; enables TLS")
    public static let tlsCert = Setting(
        "tls.cert", flag: "tls-cert", environment: "ADAPTERD_TLS_CERT", defaultDescription: "none", "client certificate file")
    public static let tlsKey = Setting(
        "tls.key", flag: "tls-key", environment: "ADAPTERD_TLS_KEY", defaultDescription: "none", "client key file")
    public static let logLevel = Setting(
        "logLevel", flag: "log-level", environment: "ADAPTERD_LOG_LEVEL", default: "info",
        "`trace`, `debug`, `info`, `notice`, `warning`, `error` or `critical`")

    /// Every setting, in README's order.
    public static let all: [Setting] = [
        broker, workerID, labels, model, dataDir, mqttVersion, maxBatch, precision, labelCheckFactor, cpuPath, cacheMaxBytes, mergeMaxBytes, maxRequestBytes,
        adapters, defaultAdapter, results, http, pool, metricsInterval, guardMinRequests, guardMaxErrorRateIncrease,
        guardMaxLatencyRatio, requireSigned, trustedKeys, maxPushBytes, maxVersions, feedbackMaxBytes, feedbackMaxNames, trainingEnabled, trainingMemoryBudget, trainingMaxSeconds, adapterRoots, baseModelNames, username, password,
        passwordFile, tlsCA, tlsCert, tlsKey, logLevel,
    ]

    /// README's configuration table, generated from `all` (a test keeps README equal to it).
    public static var markdownTable: String {
        var lines = ["| file key | flag | environment | default | meaning |", "| --- | --- | --- | --- | --- |"]
        for setting in all {
            let flag = setting.flagName.map { name in
                let value = setting.valueName.map { " " + $0 } ?? ""
                return "`\(name)\(value)`" + (setting.shape == .list ? " (repeatable)" : "")
            } ?? "—"
            let environment = setting.environment.map { "`\($0)`" } ?? "—"
            let defaultText = setting.defaultDescription ?? setting.defaultValue.map { "`\($0)`" } ?? "none"
            lines.append("| `\(setting.key)` | \(flag) | \(environment) | \(defaultText) | \(setting.summary) |")
        }
        return lines.joined(separator: "\n")
    }
}
