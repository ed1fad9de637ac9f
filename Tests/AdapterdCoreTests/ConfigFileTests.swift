import AdapterdCore
import AdapterdTestSupport
import Foundation
import Testing

@Suite("ConfigFile")
struct ConfigFileTests {
    static func write(_ text: String) throws -> String {
        let path = Harness.temporaryDirectory() + "/adapterd.yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("reads every setting from YAML")
    func readsYAML() throws {
        let file = try ConfigFile.load(path: try Self.write("""
            broker: mqtt://10.0.0.2:1883
            workerId: edge-01
            maxBatch: 16
            results: true
            adapters:
              - {name: intent, version: v2, path: /opt/a/intent}
              - {name: severity, path: /opt/a/severity}
            tls: {ca: /etc/ca.pem}
            passwordFile: /etc/adapterd/broker-password
            maxRequestBytes: 65536
            security: {adapterRoots: [/srv/adapters]}
            """))
        #expect(file.passwordFile == "/etc/adapterd/broker-password")
        #expect(file.maxRequestBytes == 65536)
        #expect(file.security?.adapterRoots == ["/srv/adapters"])
        #expect(file.broker == "mqtt://10.0.0.2:1883")
        #expect(file.workerId == "edge-01")
        #expect(file.maxBatch == 16)
        #expect(file.results == true)
        #expect(file.adapters?.map(\.name) == ["intent", "severity"])
        #expect(file.adapters?.first?.version == "v2")
        #expect(file.tls?.ca == "/etc/ca.pem")
    }

    @Test("an unknown key or a value of the wrong type is an error naming it")
    func refusesTyposAndWrongTypes() throws {
        #expect(throws: ConfigFile.Failure.self) { try ConfigFile.load(path: try Self.write("wokerId: x\n")) }
        do {
            _ = try ConfigFile.load(path: try Self.write("maxBatch: lots\n"))
            Issue.record("expected a failure")
        } catch let failure as ConfigFile.Failure {
            #expect(failure.reason.contains("maxBatch"))
        }
    }
}
