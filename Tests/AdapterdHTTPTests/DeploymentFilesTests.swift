import AdapterdAPI
import AdapterdClient
import AdapterdCore
import AdapterdTestSupport
import Foundation
import Testing
import Yams

/// The packaging files (Docker, compose, Prometheus, Grafana, systemd) cannot run here; what can be checked is
/// checked: they parse, they agree with each other, the broker accepts its config, and every metric the Grafana
/// dashboard queries is one a worker exposes.
@Suite("Deployment files", .serialized)
struct DeploymentFilesTests {
    static let root = Harness.root

    static func yaml(_ path: String) throws -> [String: Any] {
        let text = try String(contentsOfFile: root + "/" + path, encoding: .utf8)
        return try #require(try Yams.load(yaml: text) as? [String: Any])
    }

    @Test("the image's config and the bare-box example load as adapterd configurations and agree with compose, mosquitto and Prometheus")
    func configsAgree() throws {
        // A password on the command line stands in for the deployments' password files (made at install time).
        let password = [Settings.password.key: ["stand-in"]]
        let image = try SettingSources(arguments: password, environment: [:], configFile: Self.root + "/docker/adapterd.yaml")
        _ = try WorkerConfiguration(settings: image, brokerURL: "mqtt://127.0.0.1:1")
        let bareBox = try SettingSources(arguments: password, environment: [:], configFile: Self.root + "/deploy/adapterd.yaml")
        _ = try WorkerConfiguration(settings: bareBox, brokerURL: "mqtt://127.0.0.1:1")
        let dockerfile = try String(contentsOfFile: Self.root + "/docker/Dockerfile", encoding: .utf8)
        #expect(dockerfile.contains("COPY docker/adapterd.yaml /etc/adapterd/adapterd.yaml"))
        #expect(dockerfile.contains(#"ENTRYPOINT ["/usr/local/bin/adapterd", "--config", "/etc/adapterd/adapterd.yaml"]"#))
        #expect(dockerfile.contains("adapterd_AdapterdHTTP.resources"), "the dashboard page ships beside the binary")

        let compose = try Self.yaml("docker/compose.yml")
        let services = try #require(compose["services"] as? [String: Any])
        #expect(Set(services.keys) == ["mosquitto", "adapterd", "prometheus", "grafana"])
        let adapterd = try #require(services["adapterd"] as? [String: Any])
        #expect((adapterd["volumes"] as? [String])?.contains("./adapterd.yaml:/etc/adapterd/adapterd.yaml:ro") == true)
        let brokerURL = try #require(try image.string(Settings.broker))
        let broker = try #require(URL(string: brokerURL))
        #expect(services[broker.host ?? ""] != nil, "the broker host is the compose service")

        let mosquitto = try String(contentsOfFile: Self.root + "/docker/mosquitto.conf", encoding: .utf8)
        #expect(mosquitto.contains("listener \(broker.port ?? 0) "))
        #expect(mosquitto.contains("set_tcp_nodelay true"))
        #expect(mosquitto.contains("allow_anonymous false") && mosquitto.contains("acl_file /mosquitto/config/adapterd.acl"))
        let brokerVolumes = (services["mosquitto"] as? [String: Any])?["volumes"] as? [String] ?? []
        #expect(brokerVolumes.contains("../deploy/mosquitto/adapterd.acl:/mosquitto/config/adapterd.acl:ro"))
        #expect(try image.string(Settings.username) == "adapterd" && image.string(Settings.passwordFile) != nil)

        let httpPort = try #require(try image.string(Settings.http)?.split(separator: ":").last.map(String.init))
        #expect((adapterd["expose"] as? [String]) == [httpPort])
        let prometheus = try Self.yaml("docker/prometheus.yml")
        let scrape = try #require((prometheus["scrape_configs"] as? [[String: Any]])?.first)
        let discovery = try #require((scrape["dns_sd_configs"] as? [[String: Any]])?.first)
        #expect(discovery["port"] as? Int == Int(httpPort))

        let unit = try String(contentsOfFile: Self.root + "/deploy/systemd/adapterd.service", encoding: .utf8)
        #expect(unit.contains("ExecStart=/usr/local/bin/adapterd --config /etc/adapterd/adapterd.yaml"))
        #expect(unit.contains("KillSignal=SIGTERM"))
    }

    @Test("mosquitto accepts docker/mosquitto.conf (on a loopback port and a scratch persistence directory)")
    func brokerAcceptsItsConfig() async throws {
        let directory = NSTemporaryDirectory() + "adapterd-conf-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let port = try MosquittoProcess.freePort()
        // The users and passwords compose mounts come from make-users; make them here.
        let maker = try ChildProcess.spawn(Self.root + "/deploy/mosquitto/make-users", arguments: [directory], output: directory + "/make-users.log")
        try #require(ChildProcess.wait(maker, timeout: .seconds(30)) == 0, "make-users failed")
        let config = try String(contentsOfFile: Self.root + "/docker/mosquitto.conf", encoding: .utf8)
            .replacingOccurrences(of: "listener 1883 0.0.0.0", with: "listener \(port) 127.0.0.1")
            .replacingOccurrences(of: "persistence_location /mosquitto/data/", with: "persistence_location \(directory)/")
            .replacingOccurrences(of: "/mosquitto/config/", with: directory + "/")
            + "\nuser \(String(cString: getpwuid(getuid()).pointee.pw_name))\n"
        try config.write(toFile: directory + "/mosquitto.conf", atomically: true, encoding: .utf8)
        let executable = try #require(MosquittoProcess.executable())
        let pid = try ChildProcess.spawn(executable, arguments: ["-c", directory + "/mosquitto.conf"], output: directory + "/mosquitto.log")
        defer { ChildProcess.terminate(pid, within: .seconds(2)) }
        let listening = await Harness.eventually(timeout: .seconds(2), interval: .milliseconds(20)) { MosquittoProcess.accepts(port: port) }
        #expect(listening, "mosquitto refused the config: \((try? String(contentsOfFile: directory + "/mosquitto.log", encoding: .utf8)) ?? "")")
    }

    @Test("every metric the Grafana dashboard queries is exposed by a worker at /metrics")
    func grafanaQueriesExposedMetrics() async throws {
        let json = try Data(contentsOf: URL(fileURLWithPath: Self.root + "/docker/grafana/dashboards/adapterd.json"))
        let dashboard = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
        let expressions = (dashboard["panels"] as? [[String: Any]] ?? []).flatMap { ($0["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String } }
        #expect(expressions.count >= 8)
        let referenced = Set(expressions.flatMap { expression in
            expression.split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "_") }).map(String.init).filter { $0.hasPrefix("adapterd_") }
        })

        let served = try await ServedWorker()
        let client = try await AdapterdClient(brokerURL: served.broker.url, worker: served.worker.configuration.workerID)
        var request = Adapterd_V1_InferRequest()
        request.text = "turn on the lights"
        request.adapter = "intent"
        _ = try await client.infer(request)
        // Gauges are sampled once a second: wait (bounded) until every queried metric has appeared.
        var exposed: Set<String> = []
        _ = try await Harness.eventually(timeout: .seconds(5), interval: .milliseconds(50)) {
            exposed = Set(try PrometheusText(try await served.get("/metrics").body).samples.keys.map { String($0.prefix { $0 != "{" }) })
            return referenced.isSubset(of: exposed)
        }
        #expect(referenced.subtracting(exposed).isEmpty, "queried but not exposed: \(referenced.subtracting(exposed).sorted())")
        client.close()
        try await served.stop()
    }
}
