import AdapterdAPI
import AdapterdClient
import AdapterdCore
import AdapterdTestSupport
import Foundation
import MQTTRPC
import Testing

/// The shipped broker setup (deploy/mosquitto: no anonymous clients, users from make-users, the ACL file) on a real
/// mosquitto, with a worker and clients logging in as the deployments do.
@Suite("Broker authentication and ACL", .serialized)
struct BrokerACLTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// A mosquitto on a loopback port with the users make-users creates and the shipped ACL.
    struct SecuredBroker {
        let directory: String
        let port: Int
        let pid: pid_t
        var url: String { "mqtt://127.0.0.1:\(port)" }

        func password(_ user: String) throws -> String {
            try String(contentsOfFile: directory + "/\(user).password", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        }

        /// The shipped `adapterd.conf`'s settings, its paths under `directory` (the listener is the test's own).
        static func shippedSettings(in directory: String) throws -> String {
            try String(contentsOfFile: root + "/deploy/mosquitto/adapterd.conf", encoding: .utf8)
                .split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.hasPrefix("listener") }
                .joined(separator: "\n").replacingOccurrences(of: "/etc/mosquitto/", with: directory + "/")
        }

        /// Runs make-users into a new directory.
        static func makeUsers() throws -> String {
            let directory = Harness.temporaryDirectory()
            let maker = try ChildProcess.spawn(root + "/deploy/mosquitto/make-users", arguments: [directory], output: directory + "/make-users.log")
            let made = ChildProcess.wait(maker, timeout: .seconds(60))
            try #require(made == 0, "make-users failed: \((try? String(contentsOfFile: directory + "/make-users.log", encoding: .utf8)) ?? "")")
            return directory
        }

        static func start() async throws -> SecuredBroker {
            let directory = try makeUsers()
            let (port, pid) = try await Harness.startMosquitto(settings: try shippedSettings(in: directory), in: directory)
            return SecuredBroker(directory: directory, port: port, pid: pid)
        }

        var log: String { (try? String(contentsOfFile: directory + "/mosquitto.log", encoding: .utf8)) ?? "" }

        /// A bare MQTT client logged in as `user` with `clientID`, connected (or the broker's refusal thrown).
        func connect(_ user: String, clientID: String) async throws -> MQTTClient {
            var options = MQTTOptions(host: "127.0.0.1", port: port, clientID: clientID)
            options.username = user
            options.password = try password(user)
            let client = try MQTTClient(options: options)
            do {
                try await client.connect(timeout: .seconds(5))
            } catch {
                client.disconnect()
                throw error
            }
            return client
        }

        /// Records an issue unless the broker refuses `user` logging in with `clientID`.
        func expectRefused(_ user: String, clientID: String, sourceLocation: SourceLocation = #_sourceLocation) async throws {
            do {
                let client = try await connect(user, clientID: clientID)
                client.disconnect()
                Issue.record("\(user) logged in with client id \(clientID)", sourceLocation: sourceLocation)
            } catch {
                #expect("\(error)".contains("refused") || "\(error)".contains("authori"), "\(user) as \(clientID): \(error)", sourceLocation: sourceLocation)
            }
        }

        /// A worker logged in as `adapterd`, in pool `edge` as compose runs it (the pool's requests through a shared
        /// subscription), ready once the controller's GetStatus is answered.
        func startWorker() async throws -> (worker: RunningWorker, configuration: WorkerConfiguration) {
            var configuration = Harness.configuration(brokerURL: url)
            configuration.username = "adapterd"
            configuration.password = try password("adapterd")
            configuration.pool = "edge"
            return (try await RunningWorker(configuration, username: "controller", password: try password("controller")), configuration)
        }

        func stop() { ChildProcess.terminate(pid, within: .seconds(2)) }
    }

    @Test("the worker serves a sensor's inference (also through its pool) and the controller's control calls; a sensor's control call never reaches it")
    func aclSeparatesSensorsFromControllers() async throws {
        let broker = try await SecuredBroker.start()
        defer { broker.stop() }
        let (worker, configuration) = try await broker.startWorker()
        try await worker.stopping { try await Self.checkSeparation(broker: broker, worker: configuration.workerID) }
    }

    @Test("an anonymous client, a wrong password and an unknown user are refused with a clear reason")
    func loginsAreChecked() async throws {
        let broker = try await SecuredBroker.start()
        defer { broker.stop() }
        for (user, password) in [(nil, nil), ("sensor", "wrong"), ("nobody", "x")] as [(String?, String?)] {
            do {
                let client = try await AdapterdClient(brokerURL: broker.url, worker: "w", username: user, password: password, timeout: .seconds(3))
                client.close()
                Issue.record("\(user ?? "anonymous") logged in")
            } catch {
                #expect("\(error)".contains("refused"), "\(user ?? "anonymous"): \(error)")
            }
        }
    }

    @Test("a sensor or controller logging in with a worker's client id is refused and the worker stays connected")
    func workerClientIDsBelongToWorkers() async throws {
        let broker = try await SecuredBroker.start()
        defer { broker.stop() }
        let (worker, configuration) = try await broker.startWorker()
        try await worker.stopping {
            for user in ["sensor", "controller"] {
                for id in ["adapterd-" + configuration.workerID, "adapterd-\(configuration.workerID)-pool"] {
                    try await broker.expectRefused(user, clientID: id)
                }
            }
            #expect(!broker.log.contains("already connected, closing old connection"), "the broker handed the worker's id to another client")
            let controller = try await AdapterdClient(
                brokerURL: broker.url, worker: configuration.workerID, username: "controller", password: try broker.password("controller"))
            defer { controller.close() }
            let status = try await controller.control(.getStatus, Adapterd_V1_GetStatusRequest(), timeout: .seconds(5))
            #expect(status.status == .ok, "the worker stopped answering")
        }
    }

    @Test("a client id holding a topic separator is refused, so no client reads another's replies through its %c topics")
    func clientIDsCannotReachOtherReplyTopics() async throws {
        let broker = try await SecuredBroker.start()
        defer { broker.stop() }
        for id in ["adapterctl-victim/replies", "a+b", "x#"] {
            try await broker.expectRefused("sensor", clientID: id)
        }
        let ordinary = try await broker.connect("sensor", clientID: "infer-sh-1234")
        ordinary.disconnect()
    }

    @Test("make-users leaves the password file readable by the broker's own user: mosquitto started as root with the shipped configuration serves")
    func brokerStartsAsRootWithShippedFiles() async throws {
        guard geteuid() == 0, let account = getpwnam("mosquitto") else { return }
        let directory = try SecuredBroker.makeUsers()
        let passwords = try FileManager.default.attributesOfItem(atPath: directory + "/adapterd.passwords")
        #expect((passwords[.ownerAccountID] as? NSNumber)?.uint32Value == account.pointee.pw_uid, "adapterd.passwords does not belong to user mosquitto")
        #expect((passwords[.posixPermissions] as? NSNumber)?.intValue == 0o640)
        let secret = try FileManager.default.attributesOfItem(atPath: directory + "/sensor.password")
        #expect((secret[.ownerAccountID] as? NSNumber)?.uint32Value == 0 && (secret[.posixPermissions] as? NSNumber)?.intValue == 0o600,
                "the plain-text password files must stay root's")
        // As the Debian service starts it: as root, no `user` line, so mosquitto drops to user mosquitto first.
        let port = try MosquittoProcess.freePort()
        let config = "listener \(port) 127.0.0.1\nlog_dest stderr\n" + (try SecuredBroker.shippedSettings(in: directory)) + "\n"
        try config.write(toFile: directory + "/root.conf", atomically: true, encoding: .utf8)
        let executable = try #require(MosquittoProcess.executable(), "mosquitto is not installed")
        let pid = try ChildProcess.spawn(executable, arguments: ["-c", directory + "/root.conf"], output: directory + "/root.log")
        defer { ChildProcess.terminate(pid, within: .seconds(2)) }
        let listening = await Harness.eventually(timeout: .seconds(5), interval: .milliseconds(20)) { MosquittoProcess.accepts(port: port) }
        let log = (try? String(contentsOfFile: directory + "/root.log", encoding: .utf8)) ?? ""
        try #require(listening, "mosquitto as root did not start: \(log)")
        let broker = SecuredBroker(directory: directory, port: port, pid: pid)
        let sensor = try await broker.connect("sensor", clientID: "infer-sh-5678")
        sensor.disconnect()
    }

    @Test("adapterd refused by the broker (wrong password) keeps retrying with back-off, and SIGTERM stops it at once")
    func refusedLoginRetriesAndStops() async throws {
        let broker = try await SecuredBroker.start()
        defer { broker.stop() }
        let directory = Harness.temporaryDirectory()
        let log = directory + "/adapterd.log"
        let pid = try ChildProcess.spawn(AdapterdDaemon.binary, arguments: [
            "--broker", broker.url, "--worker-id", "refused", "--model", Harness.modelDirectory, "--data-dir", directory,
            "--username", "adapterd", "--password", "wrong",
        ], output: log)
        defer { ChildProcess.terminate(pid, within: .seconds(2)) }
        func attempts() -> Int {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").components(separatedBy: "cannot connect to the broker; retrying").count - 1
        }
        let retried = await Harness.eventually(timeout: .seconds(30), interval: .milliseconds(100)) { attempts() >= 3 }
        #expect(retried, "only \(attempts()) attempts logged: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        let started = ContinuousClock.now
        kill(pid, SIGTERM)
        let code = ChildProcess.wait(pid, timeout: .seconds(5))
        #expect(code == 0, "adapterd did not stop within 5 s of SIGTERM (exit \(code.map(String.init) ?? "none"))")
        #expect(ContinuousClock.now - started < .seconds(5))
    }

    /// A sensor runs inference but cannot reach control methods; the controller can.
    static func checkSeparation(broker: SecuredBroker, worker: String) async throws {
        let controller = try await AdapterdClient(
            brokerURL: broker.url, worker: worker, username: "controller", password: try broker.password("controller"))
        defer { controller.close() }
        let sensor = try await AdapterdClient(
            brokerURL: broker.url, worker: worker, username: "sensor", password: try broker.password("sensor"))
        defer { sensor.close() }

        var infer = Adapterd_V1_InferRequest()
        infer.text = "turn on the lights"
        let reply = try await sensor.infer(infer)
        #expect(reply.status == .ok && !reply.embedding.isEmpty, "a sensor may run inference")
        let poolSensor = try await AdapterdClient(
            brokerURL: broker.url, worker: Topics.poolWorker, username: "sensor", password: try broker.password("sensor"))
        defer { poolSensor.close() }
        let pooled = try await poolSensor.infer(infer)
        #expect(pooled.status == .ok, "the ACL lets workers take the pool's shared subscription")

        var route = Adapterd_V1_SetRouteRequest()
        route.name = "from-a-sensor"
        route.topic = "adapterd/v1/+/infer/#"
        route.adapter = "intent"
        // Denied by the ACL: the broker drops the request, so no reply comes and nothing changes.
        await #expect(throws: (any Error).self) {
            _ = try await sensor.control(.setRoute, route, timeout: .seconds(2))
        }
        let routes = try await controller.control(.listRoutes, Adapterd_V1_ListRoutesRequest())
        #expect(routes.status == .ok, "the controller may call control methods")
        #expect(!routes.routes.contains { $0.name == "from-a-sensor" }, "a sensor's SetRoute reached the worker")
        route.name = "from-the-controller"
        let set = try await controller.control(.setRoute, route)
        #expect(set.status == .ok)
    }
}
