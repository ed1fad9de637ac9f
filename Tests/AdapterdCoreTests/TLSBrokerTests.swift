import AdapterdAPI
import AdapterdClient
import AdapterdCore
import AdapterdTestSupport
import Foundation
import MQTTRPC
import Testing

/// A real mosquitto with a TLS listener and a password file, its certificates made at test time with openssl.
@Suite("Broker over TLS", .serialized)
struct TLSBrokerTests {
    struct TLSBroker {
        let directory: String
        let port: Int
        let pid: pid_t
        let password: String
        var url: String { "mqtts://127.0.0.1:\(port)" }
        var caFile: String { directory + "/ca.pem" }
        /// A CA that did not sign the broker's certificate.
        var otherCAFile: String { directory + "/other-ca.pem" }

        static func openssl(_ arguments: [String], in directory: String) throws {
            let pid = try ChildProcess.spawn("/usr/bin/openssl", arguments: arguments, output: directory + "/openssl.log")
            try #require(ChildProcess.wait(pid, timeout: .seconds(30)) == 0, "openssl \(arguments.first ?? ""): \((try? String(contentsOfFile: directory + "/openssl.log", encoding: .utf8)) ?? "")")
        }

        static func start() async throws -> TLSBroker {
            let directory = Harness.temporaryDirectory()
            for ca in ["ca", "other-ca"] {
                try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                             "-subj", "/CN=adapterd test \(ca)", "-keyout", "\(directory)/\(ca).key", "-out", "\(directory)/\(ca).pem"], in: directory)
            }
            try "subjectAltName=IP:127.0.0.1,DNS:localhost\n".write(toFile: directory + "/san.ext", atomically: true, encoding: .utf8)
            try openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=127.0.0.1",
                         "-keyout", "\(directory)/server.key", "-out", "\(directory)/server.csr"], in: directory)
            try openssl(["x509", "-req", "-in", "\(directory)/server.csr", "-CA", "\(directory)/ca.pem", "-CAkey", "\(directory)/ca.key",
                         "-CAcreateserial", "-days", "1", "-extfile", "\(directory)/san.ext", "-out", "\(directory)/server.pem"], in: directory)
            let password = "pw-" + UUID().uuidString.prefix(12)
            let passwd = try ChildProcess.spawn("/usr/bin/mosquitto_passwd", arguments: ["-c", "-b", directory + "/passwords", "adapterd", password], output: directory + "/passwd.log")
            try #require(ChildProcess.wait(passwd, timeout: .seconds(10)) == 0, "mosquitto_passwd failed")
            let (port, pid) = try await Harness.startMosquitto(settings: """
                cafile \(directory)/ca.pem
                certfile \(directory)/server.pem
                keyfile \(directory)/server.key
                allow_anonymous false
                password_file \(directory)/passwords
                """, in: directory)
            return TLSBroker(directory: directory, port: port, pid: pid, password: password)
        }

        func stop() { ChildProcess.terminate(pid, within: .seconds(2)) }
    }

    @Test("with the broker's CA and the right password the worker serves over TLS")
    func servesOverTLS() async throws {
        let broker = try await TLSBroker.start()
        defer { broker.stop() }
        var configuration = Harness.configuration(brokerURL: broker.url)
        configuration.username = "adapterd"
        configuration.password = broker.password
        configuration.tlsCAFile = broker.caFile
        let worker = try await RunningWorker(configuration, username: "adapterd", password: broker.password, tlsCAFile: broker.caFile)
        try await worker.stopping {
            let client = try await AdapterdClient(
                brokerURL: broker.url, worker: configuration.workerID, username: "adapterd", password: broker.password, tlsCAFile: broker.caFile)
            defer { client.close() }
            var request = Adapterd_V1_InferRequest()
            request.text = "turn on the lights"
            request.adapter = "intent"
            let reply = try await client.infer(request)
            #expect(reply.status == .ok && !reply.label.isEmpty)
        }
    }

    @Test("a CA that did not sign the broker's certificate, or a wrong password over TLS, fails with a clear reason")
    func wrongCAOrPasswordFails() async throws {
        let broker = try await TLSBroker.start()
        defer { broker.stop() }
        do {
            let client = try await AdapterdClient(
                brokerURL: broker.url, worker: "w", username: "adapterd", password: broker.password, tlsCAFile: broker.otherCAFile, timeout: .seconds(10))
            client.close()
            Issue.record("connected with a CA that did not sign the broker's certificate")
        } catch {
            #expect("\(error)".lowercased().contains("tls") || "\(error)".lowercased().contains("certificate"), "\(error)")
        }
        do {
            let client = try await AdapterdClient(
                brokerURL: broker.url, worker: "w", username: "adapterd", password: "wrong", tlsCAFile: broker.caFile, timeout: .seconds(3))
            client.close()
            Issue.record("connected with a wrong password")
        } catch {
            #expect("\(error)".contains("refused"), "\(error)")
        }
    }
}
