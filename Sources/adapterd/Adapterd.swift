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

/// adapterd: the LoRA-adapter edge inference worker. Thin: the command line is parsed here, every setting is read
/// through `SettingSources` (flag > environment > file > default, declared once in `Settings`), and the services run.
@main
struct Adapterd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adapterd",
        abstract: "Serve inference and adapter control over MQTT with one base model and many LoRA adapters.",
        discussion: """
            Every option can also come from its environment variable (ADAPTERD_BROKER, ADAPTERD_WORKER_ID, …) or the \
            --config file; flags win over the environment, the environment over the file. README's Configuration \
            table lists every setting.
            """)

    @Option(help: "Configuration file (YAML; see README). Also ADAPTERD_CONFIG.")
    var config: String?

    @Option(name: .customLong(Settings.broker.flag!), help: "\(Settings.broker.summary) (default: an embedded mosquitto).")
    var broker: String?
    @Option(name: .customLong(Settings.workerID.flag!), help: "\(Settings.workerID.summary) (default: the host name).")
    var workerID: String?
    @Option(name: .customLong(Settings.model.flag!), help: ArgumentHelp(Settings.model.summary))
    var model: String?
    @Option(name: .customLong(Settings.dataDir.flag!), help: ArgumentHelp(Settings.dataDir.summary))
    var dataDir: String?
    @Option(name: .customLong(Settings.adapters.flag!), help: ArgumentHelp(Settings.adapters.summary, valueName: Settings.adapters.valueName))
    var adapters: [String] = []
    @Option(name: .customLong(Settings.defaultAdapter.flag!), help: ArgumentHelp(Settings.defaultAdapter.summary))
    var defaultAdapter: String?
    @Flag(name: .customLong(Settings.results.flag!), help: ArgumentHelp(Settings.results.summary))
    var results = false
    @Option(name: .customLong(Settings.mqttVersion.flag!), help: ArgumentHelp(Settings.mqttVersion.summary))
    var mqttVersion: String?
    @Option(name: .customLong(Settings.labels.flag!), help: ArgumentHelp(Settings.labels.summary, valueName: Settings.labels.valueName))
    var labels: [String] = []
    @Option(name: .customLong(Settings.maxBatch.flag!), help: ArgumentHelp(Settings.maxBatch.summary))
    var maxBatch: String?
    @Option(name: .customLong(Settings.labelCheckFactor.flag!), help: ArgumentHelp(Settings.labelCheckFactor.summary))
    var labelCheckFactor: String?
    @Option(name: .customLong(Settings.precision.flag!), help: ArgumentHelp(Settings.precision.summary))
    var precision: String?
    @Option(name: .customLong(Settings.cpuPath.flag!), help: ArgumentHelp(Settings.cpuPath.summary))
    var cpuPath: String?
    @Option(name: .customLong(Settings.cacheMaxBytes.flag!), help: ArgumentHelp(Settings.cacheMaxBytes.summary))
    var cacheMaxBytes: String?
    @Option(name: .customLong(Settings.mergeMaxBytes.flag!), help: ArgumentHelp(Settings.mergeMaxBytes.summary))
    var mergeMaxBytes: String?
    @Option(name: .customLong(Settings.maxRequestBytes.flag!), help: ArgumentHelp(Settings.maxRequestBytes.summary))
    var maxRequestBytes: String?
    @Option(name: .customLong(Settings.username.flag!), help: ArgumentHelp(Settings.username.summary))
    var username: String?
    @Option(name: .customLong(Settings.password.flag!), help: ArgumentHelp(Settings.password.summary))
    var password: String?
    @Option(name: .customLong(Settings.passwordFile.flag!), help: ArgumentHelp(Settings.passwordFile.summary))
    var passwordFile: String?
    @Option(name: .customLong(Settings.tlsCA.flag!), help: ArgumentHelp(Settings.tlsCA.summary))
    var tlsCA: String?
    @Option(name: .customLong(Settings.tlsCert.flag!), help: ArgumentHelp(Settings.tlsCert.summary))
    var tlsCert: String?
    @Option(name: .customLong(Settings.tlsKey.flag!), help: ArgumentHelp(Settings.tlsKey.summary))
    var tlsKey: String?
    @Option(name: .customLong(Settings.http.flag!), help: ArgumentHelp(Settings.http.summary, valueName: Settings.http.valueName))
    var http: String?
    @Option(name: .customLong(Settings.pool.flag!), help: ArgumentHelp(Settings.pool.summary))
    var pool: String?
    @Option(name: .customLong(Settings.metricsInterval.flag!), help: ArgumentHelp(Settings.metricsInterval.summary))
    var metricsInterval: String?
    @Option(name: .customLong(Settings.trustedKeys.flag!), help: ArgumentHelp(Settings.trustedKeys.summary))
    var trustedKeys: [String] = []
    @Option(name: .customLong(Settings.adapterRoots.flag!), help: ArgumentHelp(Settings.adapterRoots.summary))
    var adapterRoots: [String] = []
    @Flag(name: .customLong(Settings.requireSigned.flag!), help: ArgumentHelp(Settings.requireSigned.summary))
    var requireSigned = false
    @Option(name: .customLong(Settings.logLevel.flag!), help: ArgumentHelp(Settings.logLevel.summary))
    var logLevel: String?
    @Option(name: .customLong(Settings.trainingEnabled.flag!), help: ArgumentHelp(Settings.trainingEnabled.summary, valueName: "true|false"))
    var training: String?

    /// The command line's values by setting key, for `SettingSources`.
    private var commandLine: [String: [String]] {
        let single: [(Setting, String?)] = [
            (Settings.broker, broker), (Settings.workerID, workerID), (Settings.model, model), (Settings.dataDir, dataDir),
            (Settings.defaultAdapter, defaultAdapter), (Settings.mqttVersion, mqttVersion), (Settings.maxBatch, maxBatch),
            (Settings.precision, precision), (Settings.cpuPath, cpuPath), (Settings.cacheMaxBytes, cacheMaxBytes), (Settings.mergeMaxBytes, mergeMaxBytes),
            (Settings.maxRequestBytes, maxRequestBytes), (Settings.username, username), (Settings.password, password),
            (Settings.passwordFile, passwordFile), (Settings.tlsCA, tlsCA), (Settings.tlsCert, tlsCert),
            (Settings.tlsKey, tlsKey), (Settings.http, http), (Settings.pool, pool),
            (Settings.metricsInterval, metricsInterval), (Settings.logLevel, logLevel), (Settings.labelCheckFactor, labelCheckFactor),
            (Settings.trainingEnabled, training),
            (Settings.results, results ? "true" : nil), (Settings.requireSigned, requireSigned ? "true" : nil),
        ]
        var values: [String: [String]] = [:]
        for (setting, value) in single { if let value { values[setting.key] = [value] } }
        for (setting, list) in [
            (Settings.adapters, adapters), (Settings.trustedKeys, trustedKeys), (Settings.adapterRoots, adapterRoots), (Settings.labels, labels),
        ] {
            if !list.isEmpty { values[setting.key] = list }
        }
        return values
    }

    /// Writes a line to standard output at once (stdout is block-buffered when it is not a terminal).
    static func say(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    func run() async throws {
        ExecutionRuntime.restartWithPassiveWaitIfNeeded()
        let environment = ProcessInfo.processInfo.environment
        let settings: SettingSources
        let level: Logger.Level
        let dataDirectory: String
        let brokerSetting: String?
        let httpAddress: String?
        do {
            settings = try SettingSources(arguments: commandLine, environment: environment, configFile: config ?? environment["ADAPTERD_CONFIG"])
            level = try settings.choice(Settings.logLevel, among: Logger.Level.allCases.map(\.rawValue), Logger.Level.init(rawValue:)) ?? .info
            dataDirectory = try settings.string(Settings.dataDir) ?? "data"
            brokerSetting = try settings.string(Settings.broker)
            httpAddress = try settings.string(Settings.http)
        } catch {
            throw StartupError(message: error.description)
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "adapterd")
        // Libraries record through swift-metrics; this executable binds Prometheus as the backend.
        let prometheus = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(HTTPListener.metricsFactory(registry: prometheus))
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)

        var embedded: MosquittoProcess?
        var brokerURL = brokerSetting
        if brokerURL == nil {
            let process = try MosquittoProcess(directory: dataDirectory + "/broker", persistent: true)
            try process.start()
            embedded = process
            brokerURL = process.url
            Self.say("adapterd: embedded broker listening at \(process.url)")
        }
        defer { embedded?.stop() }

        let worker: Worker
        let configuration: WorkerConfiguration
        do {
            configuration = try WorkerConfiguration(settings: settings, brokerURL: brokerURL!)
            worker = try Worker(configuration: configuration, logger: logger)
        } catch let error as CustomStringConvertible & Error {
            // Not a usage problem: say what is wrong and stop, without the usage text.
            throw StartupError(message: error.description)
        }
        if let embedded {
            Self.say("adapterd: worker '\(configuration.workerID)' — try: adapterctl infer --broker \(embedded.url) --worker \(configuration.workerID) \"turn on the lights\"")
        }
        var services: [any Service] = [worker]
        if let address = httpAddress {
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
}
