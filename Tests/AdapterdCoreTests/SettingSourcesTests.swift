import AdapterEngine
import AdapterdCore
import AdapterdTestSupport
import Foundation
import Testing

@Suite("SettingSources")
struct SettingSourcesTests {
    static func write(_ text: String) throws -> String {
        let path = Harness.temporaryDirectory() + "/adapterd.yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    @Test("reads every kind of setting from YAML")
    func readsYAML() throws {
        let sources = try SettingSources(arguments: [:], environment: [:], configFile: try Self.write("""
            broker: mqtt://10.0.0.2:1883
            workerId: edge-01
            maxBatch: 16
            results: true
            adapters:
              - {name: intent, version: v2, path: /opt/a/intent}
              - {name: severity, path: /opt/a/severity}
            tls: {ca: /etc/ca.pem}
            maxRequestBytes: 65536
            security: {adapterRoots: [/srv/adapters], requireSigned: true}
            rolloutGuard: {minRequests: 20}
            metrics: {interval: 5}
            """))
        let configuration = try WorkerConfiguration(settings: sources, brokerURL: "mqtt://127.0.0.1:1")
        #expect(try sources.string(Settings.broker) == "mqtt://10.0.0.2:1883")
        #expect(configuration.workerID == "edge-01")
        #expect(configuration.maxBatch == 16)
        #expect(configuration.publishResults)
        #expect(configuration.preload.map(\.name) == ["intent", "severity"])
        #expect(configuration.preload.map(\.version) == ["v2", "v1"])
        #expect(configuration.tlsCAFile == "/etc/ca.pem")
        #expect(configuration.maxRequestBytes == 65536)
        #expect(configuration.adapterRoots == ["/srv/adapters"])
        #expect(configuration.requireSigned)
        #expect(configuration.guardPolicy.minRequests == 20)
        #expect(configuration.metricsInterval == .seconds(5))
    }

    @Test("a flag wins over the environment, the environment over the file, the file over the default")
    func precedence() throws {
        let file = try Self.write("maxBatch: 8\nprecision: int8\nmodel: /from/file\n")
        let environment = ["ADAPTERD_MAX_BATCH": "12", "ADAPTERD_PRECISION": "fp32"]
        let sources = try SettingSources(arguments: [Settings.maxBatch.key: ["20"]], environment: environment, configFile: file)
        #expect(try sources.int(Settings.maxBatch) == 20)
        #expect(sources.origin(of: Settings.maxBatch) == "--max-batch")
        #expect(try sources.string(Settings.precision) == "fp32")
        #expect(sources.origin(of: Settings.precision) == "ADAPTERD_PRECISION")
        #expect(try sources.string(Settings.model) == "/from/file")
        #expect(try sources.int(Settings.cacheMaxBytes) == 268_435_456)
        #expect(sources.origin(of: Settings.cacheMaxBytes) == "the default")
    }

    @Test("lists come from repeated flags, comma-separated variables or YAML lists")
    func lists() throws {
        let fromEnvironment = SettingSources(environment: ["ADAPTERD_ADAPTER_ROOTS": "/a, /b"])
        #expect(fromEnvironment.strings(Settings.adapterRoots) == ["/a", "/b"])
        let fromFlags = SettingSources(arguments: [Settings.adapterRoots.key: ["/c", "/d"]], environment: ["ADAPTERD_ADAPTER_ROOTS": "/a"])
        #expect(fromFlags.strings(Settings.adapterRoots) == ["/c", "/d"])
        #expect(SettingSources().strings(Settings.baseModelNames) == ["sentence-transformers/all-MiniLM-L6-v2"])
    }

    @Test("the table's defaults are the worker's own defaults")
    func defaultsAgree() throws {
        let resolved = try WorkerConfiguration(settings: SettingSources(), brokerURL: "mqtt://127.0.0.1:1")
        let plain = WorkerConfiguration(brokerURL: "mqtt://127.0.0.1:1", workerID: "w", modelDirectory: "m", dataDirectory: "d")
        #expect(resolved.maxBatch == plain.maxBatch)
        #expect(resolved.cacheMaxBytes == plain.cacheMaxBytes)
        #expect(resolved.maxRequestBytes == plain.maxRequestBytes)
        #expect(resolved.metricsInterval == plain.metricsInterval)
        #expect(resolved.maxPushBytes == plain.maxPushBytes)
        #expect(resolved.baseModelNames == plain.baseModelNames)
        #expect(resolved.guardPolicy.minRequests == plain.guardPolicy.minRequests)
        #expect(resolved.guardPolicy.maxErrorRateIncrease == plain.guardPolicy.maxErrorRateIncrease)
        #expect(resolved.guardPolicy.maxLatencyRatio == plain.guardPolicy.maxLatencyRatio)
        #expect(resolved.precision == plain.precision && resolved.protocolVersion == plain.protocolVersion)
        #expect(resolved.modelDirectory == "models/all-MiniLM-L6-v2" && resolved.dataDirectory == "data")
    }

    @Test("an unknown key, a wrong value, a bad choice or a precision the CPU path lacks is an error naming where it came from")
    func errorsNameTheirOrigin() throws {
        #expect(throws: SettingError.self) { try SettingSources(arguments: [:], environment: [:], configFile: try Self.write("wokerId: x\n")) }
        #expect(throws: SettingError.self) { try SettingSources(arguments: [:], environment: [:], configFile: try Self.write("security: {adapterRoot: [/x]}\n")) }
        // A key that is not text (Yams.load trapped on these; found by Fuzz/FuzzConfigFile).
        for text in ["? [a, b]\n: 1\n", "{[1]: 2}\n", "security:\n  {x: 1}: true\n"] {
            #expect(throws: SettingError.self, "\(text)") { try SettingSources(arguments: [:], environment: [:], configFile: try Self.write(text)) }
        }
        do {
            let sources = try SettingSources(arguments: [:], environment: [:], configFile: try Self.write("maxBatch: lots\n"))
            _ = try WorkerConfiguration(settings: sources, brokerURL: "mqtt://127.0.0.1:1")
            Issue.record("expected a failure")
        } catch {
            #expect("\(error)".contains("'maxBatch'") && "\(error)".contains("lots"), "\(error)")
        }
        do {
            _ = try WorkerConfiguration(settings: SettingSources(environment: ["ADAPTERD_PRECISION": "int4"]), brokerURL: "mqtt://127.0.0.1:1")
            Issue.record("expected a failure")
        } catch {
            #expect(error.description.contains("ADAPTERD_PRECISION") && error.description.contains("fp32, int8"), "\(error)")
        }
        do {
            // BF16 on a path without BF16 dot products (oneDNN would emulate it at a third of FP32's speed).
            let sources = SettingSources(environment: ["ADAPTERD_PRECISION": "bf16", "ADAPTERD_CPU_PATH": "avx512-vnni"])
            _ = try WorkerConfiguration(settings: sources, brokerURL: "mqtt://127.0.0.1:1")
            Issue.record("expected a failure")
        } catch {
            #expect(error.description.contains("bf16 needs BF16 dot products") && error.description.contains("use fp32 or int8"), "\(error)")
        }
        do {
            _ = try WorkerConfiguration(settings: SettingSources(arguments: [Settings.maxBatch.key: ["0"]]), brokerURL: "mqtt://127.0.0.1:1")
            Issue.record("expected a failure")
        } catch {
            #expect(error.description.contains("--max-batch must be positive"), "\(error)")
        }
    }

    @Test("docs/settings.md's configuration table is the settings table")
    func readmeTableIsTheSettingsTable() throws {
        let readme = try String(contentsOfFile: Self.root + "/docs/settings.md", encoding: .utf8)
        #expect(readme.contains(Settings.markdownTable), "docs/settings.md's configuration table differs from Settings.markdownTable:\n\(Settings.markdownTable)")
    }

    @Test("every environment variable is ADAPTERD_ and the flag's name, and keys, flags and variables are unique")
    func namesAreConsistent() {
        for setting in Settings.all {
            if let flag = setting.flag, let environment = setting.environment {
                let expected = "ADAPTERD_" + flag.uppercased().replacingOccurrences(of: "-", with: "_")
                // Repeatable flags are singular, their variables plural (ADAPTERD_ADAPTER_ROOTS for --adapter-root).
                #expect(environment == expected || environment == expected + "S", "\(setting.key): \(environment)")
            }
        }
        #expect(Set(Settings.all.map(\.key)).count == Settings.all.count)
        #expect(Set(Settings.all.compactMap(\.flag)).count == Settings.all.compactMap(\.flag).count)
        #expect(Set(Settings.all.compactMap(\.environment)).count == Settings.all.compactMap(\.environment).count)
    }
}
