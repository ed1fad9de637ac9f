import AdapterEngine
import AdapterRuntime
import Foundation

extension WorkerConfiguration {
    /// Every setting read from `settings` (flag > environment > file > default), checked; `brokerURL` is the
    /// resolved broker (the executable starts an embedded one when `Settings.broker` has no value).
    public init(settings: SettingSources, brokerURL: String) throws(SettingError) {
        let hostName = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "edge"
        self.init(
            brokerURL: brokerURL, workerID: try settings.string(Settings.workerID) ?? hostName,
            modelDirectory: try settings.string(Settings.model) ?? "", dataDirectory: try settings.string(Settings.dataDir) ?? "")
        protocolVersion = try settings.choice(Settings.mqttVersion, among: ["5", "3.1.1"], MQTTProtocolChoice.init(rawValue:)) ?? .v5
        maxBatch = try Self.positive(settings, Settings.maxBatch) ?? maxBatch
        precision = try settings.choice(Settings.precision, among: Precision.allCases.map(\.rawValue), Precision.init(rawValue:)) ?? .fp32
        if let factor = try settings.double(Settings.labelCheckFactor) {
            guard factor >= 0, factor.isFinite else {
                throw SettingError(message: "\(settings.origin(of: Settings.labelCheckFactor) ?? "the label check factor") must be 0 or more")
            }
            labelCheckFactor = Float(factor)
        }
        kernelPath = try settings.choice(Settings.cpuPath, among: KernelPath.allCases.map(\.description), KernelPath.init(name:))
        let path = min(kernelPath ?? .detected, .detected)
        guard precision != .bf16 || path.hasBF16 else {
            throw SettingError(message: "precision bf16 needs BF16 dot products (kernel path avx512-bf16 or amx); this worker's path is \(path): use fp32 or int8")
        }
        cacheMaxBytes = try Self.positive(settings, Settings.cacheMaxBytes) ?? cacheMaxBytes
        if let bytes = try settings.int(Settings.mergeMaxBytes) {
            guard bytes >= 0 else { throw SettingError(message: "\(settings.origin(of: Settings.mergeMaxBytes) ?? "the merge budget") must be 0 or more, not \(bytes)") }
            mergeMaxBytes = bytes
        }
        maxRequestBytes = try Self.positive(settings, Settings.maxRequestBytes) ?? maxRequestBytes
        preload = try settings.strings(Settings.adapters).map { spec throws(SettingError) in try Self.parseAdapter(spec) }
        defaultAdapter = try settings.string(Settings.defaultAdapter)
        publishResults = try settings.bool(Settings.results)
        pool = try settings.string(Settings.pool)
        if let seconds = try settings.double(Settings.metricsInterval) {
            guard seconds >= 1 else {
                throw SettingError(message: "\(settings.origin(of: Settings.metricsInterval) ?? "the metrics interval") must be at least 1 second")
            }
            metricsInterval = .milliseconds(Int64(seconds * 1000))
        }
        guardPolicy.minRequests = try settings.int(Settings.guardMinRequests) ?? guardPolicy.minRequests
        guardPolicy.maxErrorRateIncrease = try settings.double(Settings.guardMaxErrorRateIncrease) ?? guardPolicy.maxErrorRateIncrease
        guardPolicy.maxLatencyRatio = try settings.double(Settings.guardMaxLatencyRatio) ?? guardPolicy.maxLatencyRatio
        requireSigned = try settings.bool(Settings.requireSigned)
        trustedKeys = settings.strings(Settings.trustedKeys)
        if let bytes = try Self.positive(settings, Settings.maxPushBytes) {
            // A push needs three times its size on disk at once: past 1 TiB that sum leaves what a box can hold.
            guard bytes <= 1 << 40 else {
                throw SettingError(message: "\(settings.origin(of: Settings.maxPushBytes) ?? "the largest push") must be at most 1 TiB (1099511627776 bytes)")
            }
            maxPushBytes = Int64(bytes)
        }
        feedbackLimits.maxBytes = try Self.positive(settings, Settings.feedbackMaxBytes) ?? feedbackLimits.maxBytes
        feedbackLimits.maxNames = try Self.positive(settings, Settings.feedbackMaxNames) ?? feedbackLimits.maxNames
        maxVersions = try settings.int(Settings.maxVersions) ?? maxVersions
        for item in settings.strings(Settings.labels) {
            let parts = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw SettingError(message: "label '\(item)': expected KEY=VALUE")
            }
            labels[parts[0]] = parts[1]
        }
        trainingEnabled = try settings.bool(Settings.trainingEnabled, absent: true)
        trainingMemoryBudgetBytes = try settings.int(Settings.trainingMemoryBudget) ?? trainingMemoryBudgetBytes
        trainingMaxSeconds = try settings.int(Settings.trainingMaxSeconds) ?? trainingMaxSeconds
        adapterRoots = settings.strings(Settings.adapterRoots)
        baseModelNames = settings.strings(Settings.baseModelNames)
        username = try settings.string(Settings.username)
        password = try settings.string(Settings.password)
        if password == nil, let path = try settings.string(Settings.passwordFile) {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw SettingError(message: "cannot read the password file \(path) (\(settings.origin(of: Settings.passwordFile) ?? "passwordFile"))")
            }
            let text = String(decoding: data, as: UTF8.self)
            password = text.split(separator: "\n", omittingEmptySubsequences: false).first
                .map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
        }
        tlsCAFile = try settings.string(Settings.tlsCA)
        tlsCertFile = try settings.string(Settings.tlsCert)
        tlsKeyFile = try settings.string(Settings.tlsKey)
    }

    /// `NAME[@VERSION]=DIR`; the version defaults to `v1`.
    static func parseAdapter(_ spec: String) throws(SettingError) -> (name: String, version: String, path: String) {
        guard let equals = spec.firstIndex(of: "="), equals != spec.startIndex else {
            throw SettingError(message: "adapter '\(spec)': expected NAME[@VERSION]=DIR")
        }
        let parts = spec[..<equals].split(separator: "@", maxSplits: 1).map(String.init)
        return (parts[0], parts.count > 1 ? parts[1] : "v1", String(spec[spec.index(after: equals)...]))
    }

    private static func positive(_ settings: SettingSources, _ setting: Setting) throws(SettingError) -> Int? {
        guard let value = try settings.int(setting) else { return nil }
        guard value > 0 else { throw SettingError(message: "\(settings.origin(of: setting) ?? setting.key) must be positive, not \(value)") }
        return value
    }
}
