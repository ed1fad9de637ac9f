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

        static func start() async throws -> SecuredBroker {
            let directory = Harness.temporaryDirectory()
            let maker = try ChildProcess.spawn(root + "/deploy/mosquitto/make-users", arguments: [directory], output: directory + "/make-users.log")
            let made = ChildProcess.wait(maker, timeout: .seconds(30))
            try #require(made == 0, "make-users failed: \((try? String(contentsOfFile: directory + "/make-users.log", encoding: .utf8)) ?? "")")
            let (port, pid) = try await Harness.startMosquitto(settings: """
                allow_anonymous false
                password_file \(directory)/adapterd.passwords
                acl_file \(directory)/adapterd.acl
                set_tcp_nodelay true
                """, in: directory)
            return SecuredBroker(directory: directory, port: port, pid: pid)
        }

        func stop() { ChildProcess.terminate(pid, within: .seconds(2)) }
    }

    @Test("the worker serves a sensor's inference (also through its pool) and the controller's control calls; a sensor's control call never reaches it")
    func aclSeparatesSensorsFromControllers() async throws {
        let broker = try await SecuredBroker.start()
        defer { broker.stop() }
        var configuration = Harness.configuration(brokerURL: broker.url)
        configuration.username = "adapterd"
        configuration.password = try broker.password("adapterd")
        // As compose runs it: the worker also takes the pool's requests through a shared subscription.
        configuration.pool = "edge"
        let worker = try await RunningWorker(configuration, username: "controller", password: try broker.password("controller"))
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
            _ = try await sensor.control("SetRoute", route, as: Adapterd_V1_SetRouteReply.self, timeout: .seconds(2))
        }
        let routes = try await controller.control("ListRoutes", Adapterd_V1_ListRoutesRequest(), as: Adapterd_V1_ListRoutesReply.self)
        #expect(routes.status == .ok, "the controller may call control methods")
        #expect(!routes.routes.contains { $0.name == "from-a-sensor" }, "a sensor's SetRoute reached the worker")
        route.name = "from-the-controller"
        let set = try await controller.control("SetRoute", route, as: Adapterd_V1_SetRouteReply.self)
        #expect(set.status == .ok)
    }
}
