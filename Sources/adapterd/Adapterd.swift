import AdapterEngine
import AdapterdCore
import AdapterRuntime
import AdapterdHTTP
import ArgumentParser
import Foundation
import Logging
import MQTTRPC
import Metrics
import Prometheus
import ServiceLifecycle

/// adapterd: the LoRA-adapter edge inference worker.
@main
struct Adapterd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adapterd",
        abstract: "Serve inference and adapter control over MQTT with one base model and many LoRA adapters.",
        discussion: "Every option can also come from the environment as ADAPTERD_<OPTION> (e.g. ADAPTERD_BROKER, ADAPTERD_WORKER_ID); flags win.")

    @Option(help: "Configuration file (YAML; see README). Flags and ADAPTERD_* variables override it.")
    var config: String?

    @Option(help: "Broker URL (mqtt://host:port). Without it adapterd starts a private mosquitto on a free loopback port.")
    var broker: String?

    @Option(name: .customLong("worker-id"), help: "Worker id used in topic names (default: the host name).")
    var workerID: String?

    @Option(help: "Base model directory (default: models/all-MiniLM-L6-v2).")
    var model: String?

    @Option(name: .customLong("data-dir"), help: "Directory for adapterd's own files (default: data).")
    var dataDir: String?

    @Option(name: .customLong("adapter"), help: "Load a PEFT adapter at start: NAME[@VERSION]=DIR (repeatable; version defaults to v1).")
    var adapters: [String] = []

    @Option(name: .customLong("default-adapter"), help: "Adapter for requests that name none (default: none, which returns embeddings).")
    var defaultAdapter: String?

    @Flag(help: "Publish a copy of every inference reply under adapterd/v1/{worker}/results/….")
    var results = false

    @Option(name: .customLong("mqtt-version"), help: "MQTT protocol version of the worker's connection: 5 or 3.1.1.")
    var mqttVersion: String?

    @Option(name: .customLong("max-batch"), help: "Largest batch the engine runs at once.")
    var maxBatch: Int?

    @Option(help: "Precision of the base model's linear layers: fp32 (exact, default) or int8.")
    var precision: String?

    @Option(name: .customLong("cpu-path"), help: "Run a lower kernel path than the CPU's best: portable, avx2, avx2-vnni, avx512, avx512-vnni or amx.")
    var cpuPath: String?

    @Option(name: .customLong("cache-max-bytes"), help: "Bytes of adapter weights held ready in memory (default 268435456).")
    var cacheMaxBytes: Int?

    @Option(name: .customLong("max-request-bytes"), help: "Largest request body accepted, in bytes (default 1048576).")
    var maxRequestBytes: Int?

    @Option(help: "Broker user name.") var username: String?
    @Option(help: "Broker password (visible in process listings: prefer --password-file).") var password: String?
    @Option(name: .customLong("password-file"), help: "File whose first line is the broker password.") var passwordFile: String?
    @Option(name: .customLong("tls-ca"), help: "CA file; enables TLS.") var tlsCA: String?
    @Option(name: .customLong("tls-cert"), help: "Client certificate file.") var tlsCert: String?
    @Option(name: .customLong("tls-key"), help: "Client key file.") var tlsKey: String?

    @Option(help: "HTTP listener for /metrics (Prometheus), /healthz, /readyz and the dashboard, e.g. 127.0.0.1:9464 (off when unset).")
    var http: String?

    @Option(help: "Also take requests from the shared subscription $share/NAME/adapterd/v1/pool/infer/# and pool control topics.")
    var pool: String?

    @Option(name: .customLong("metrics-interval"), help: "Seconds between metrics documents on adapterd/v1/{worker}/metrics (default 10).")
    var metricsInterval: Double?

    @Option(name: .customLong("trusted-key"), help: "ed25519 public key (base64 or a .pub file) whose signed pushes are accepted (repeatable).")
    var trustedKeys: [String] = []

    @Option(name: .customLong("adapter-root"), help: "A directory LoadAdapter may read adapters from (repeatable; the data directory always is one).")
    var adapterRoots: [String] = []

    @Flag(name: .customLong("require-signed"), help: "Refuse adapter pushes not signed by a trusted key.")
    var requireSigned = false

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String?

    /// Writes a line to standard output at once (stdout is block-buffered when it is not a terminal).
    static func say(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    static func environment(_ name: String) -> String? {
        ProcessInfo.processInfo.environment["ADAPTERD_" + name]
    }

    func run() async throws {
        ExecutionRuntime.restartWithPassiveWaitIfNeeded()
        let file: ConfigFile
        do {
            file = try (config ?? Self.environment("CONFIG")).map(ConfigFile.load) ?? ConfigFile()
        } catch {
            throw ValidationError("\(error)")
        }
        let level = Logger.Level(rawValue: logLevel ?? Self.environment("LOG_LEVEL") ?? file.logLevel ?? "info") ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "adapterd")
        // Libraries record through swift-metrics; this executable binds Prometheus as the backend.
        let prometheus = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(HTTPListener.metricsFactory(registry: prometheus))
        let dataDirectory = dataDir ?? Self.environment("DATA_DIR") ?? file.dataDir ?? "data"
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)

        var embedded: MosquittoProcess?
        var brokerURL = broker ?? Self.environment("BROKER") ?? file.broker
        if brokerURL == nil {
            let process = try MosquittoProcess(directory: dataDirectory + "/broker", persistent: true)
            try process.start()
            embedded = process
            brokerURL = process.url
            Self.say("adapterd: embedded broker listening at \(process.url)")
        }
        defer { embedded?.stop() }

        var configuration = WorkerConfiguration(
            brokerURL: brokerURL!,
            workerID: workerID ?? Self.environment("WORKER_ID") ?? file.workerId ?? ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "edge",
            modelDirectory: model ?? Self.environment("MODEL") ?? file.model ?? "models/all-MiniLM-L6-v2",
            dataDirectory: dataDirectory)
        if let version = mqttVersion ?? Self.environment("MQTT_VERSION") ?? file.mqttVersion {
            guard let choice = MQTTProtocolChoice(rawValue: version) else { throw ValidationError("--mqtt-version must be 5 or 3.1.1") }
            configuration.protocolVersion = choice
        }
        configuration.maxBatch = maxBatch ?? Self.environment("MAX_BATCH").flatMap(Int.init) ?? file.maxBatch ?? configuration.maxBatch
        if let name = precision ?? Self.environment("PRECISION") ?? file.precision {
            guard let value = Precision(rawValue: name) else { throw ValidationError("--precision must be fp32 or int8, not '\(name)'") }
            configuration.precision = value
        }
        if let name = cpuPath ?? Self.environment("CPU_PATH") ?? file.cpuPath {
            guard let value = KernelPath(name: name) else {
                throw ValidationError("--cpu-path must be one of \(KernelPath.allCases.map(\.description).joined(separator: ", ")), not '\(name)'")
            }
            configuration.kernelPath = value
        }
        configuration.cacheMaxBytes = cacheMaxBytes ?? Self.environment("CACHE_MAX_BYTES").flatMap(Int.init) ?? file.cacheMaxBytes ?? configuration.cacheMaxBytes
        configuration.maxRequestBytes = maxRequestBytes ?? Self.environment("MAX_REQUEST_BYTES").flatMap(Int.init) ?? file.maxRequestBytes ?? configuration.maxRequestBytes
        if let policy = file.rolloutGuard {
            let defaults = GuardPolicy()
            configuration.guardPolicy = GuardPolicy(
                minRequests: policy.minRequests ?? defaults.minRequests,
                maxErrorRateIncrease: policy.maxErrorRateIncrease ?? defaults.maxErrorRateIncrease,
                maxLatencyRatio: policy.maxLatencyRatio ?? defaults.maxLatencyRatio)
        }
        configuration.publishResults = results || Self.environment("RESULTS") == "1" || file.results == true
        configuration.defaultAdapter = defaultAdapter ?? Self.environment("DEFAULT_ADAPTER") ?? file.defaultAdapter
        configuration.username = username ?? Self.environment("USERNAME") ?? file.username
        configuration.password = password ?? Self.environment("PASSWORD") ?? file.password
        if configuration.password == nil, let path = passwordFile ?? Self.environment("PASSWORD_FILE") ?? file.passwordFile {
            guard let text = FileManager.default.contents(atPath: path).map({ String(decoding: $0, as: UTF8.self) }) else {
                throw StartupError(message: "cannot read the password file \(path)")
            }
            configuration.password = text.split(separator: "\n", omittingEmptySubsequences: false).first.map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
        }
        configuration.tlsCAFile = tlsCA ?? Self.environment("TLS_CA") ?? file.tls?.ca
        configuration.tlsCertFile = tlsCert ?? Self.environment("TLS_CERT") ?? file.tls?.cert
        configuration.tlsKeyFile = tlsKey ?? Self.environment("TLS_KEY") ?? file.tls?.key
        configuration.pool = pool ?? Self.environment("POOL") ?? file.pool
        if let seconds = metricsInterval ?? Self.environment("METRICS_INTERVAL").flatMap(Double.init) ?? file.metrics?.interval {
            guard seconds >= 1 else { throw ValidationError("the metrics interval must be at least 1 second") }
            configuration.metricsInterval = .milliseconds(Int64(seconds * 1000))
        }
        configuration.trustedKeys = trustedKeys.isEmpty
            ? (Self.environment("TRUSTED_KEYS")?.split(separator: ",").map(String.init) ?? file.security?.trustedKeys ?? [])
            : trustedKeys
        configuration.requireSigned = requireSigned || Self.environment("REQUIRE_SIGNED") == "1" || file.security?.requireSigned == true
        configuration.maxPushBytes = file.security?.maxPushBytes ?? configuration.maxPushBytes
        configuration.adapterRoots = adapterRoots.isEmpty
            ? (Self.environment("ADAPTER_ROOTS")?.split(separator: ",").map(String.init) ?? file.security?.adapterRoots ?? [])
            : adapterRoots
        configuration.baseModelNames = file.baseModelNames ?? configuration.baseModelNames
        let specs = adapters.isEmpty ? (Self.environment("ADAPTERS")?.split(separator: ",").map(String.init) ?? []) : adapters
        configuration.preload = try specs.isEmpty
            ? (file.adapters ?? []).map { ($0.name, $0.version ?? "v1", $0.path) }
            : specs.map(Self.parseAdapter)

        let worker: Worker
        do {
            worker = try Worker(configuration: configuration, logger: logger)
        } catch let error as CustomStringConvertible & Error {
            // Not a usage problem: say what is wrong and stop, without the usage text.
            throw StartupError(message: error.description)
        }
        if let embedded {
            Self.say("adapterd: worker '\(configuration.workerID)' — try: adapterctl infer --broker \(embedded.url) --worker \(configuration.workerID) \"turn on the lights\"")
        }
        var services: [any Service] = [worker]
        if let address = http ?? Self.environment("HTTP") ?? file.http {
            let (host, port) = try HTTPListener.parse(address: address)
            services.append(HTTPListener.application(worker: worker, registry: prometheus, host: host, port: port, logger: logger) { bound in
                Self.say("adapterd: metrics and dashboard at http://\(host):\(bound)/")
            })
        }
        let group = ServiceGroup(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
    }

    /// The worker could not start (registry, model, broker settings); printed as is, without usage text.
    struct StartupError: Error, CustomStringConvertible {
        let message: String
        var description: String { "adapterd cannot start: \(message)" }
    }

    /// `NAME[@VERSION]=DIR`.
    static func parseAdapter(_ spec: String) throws -> (name: String, version: String, path: String) {
        guard let equals = spec.firstIndex(of: "=") else { throw ValidationError("--adapter '\(spec)': expected NAME[@VERSION]=DIR") }
        let label = spec[..<equals]
        let path = String(spec[spec.index(after: equals)...])
        let parts = label.split(separator: "@", maxSplits: 1).map(String.init)
        return (parts.first ?? "", parts.count > 1 ? parts[1] : "v1", path)
    }
}
