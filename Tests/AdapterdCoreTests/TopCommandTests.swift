import AdapterdAPI
import AdapterdClient
import AdapterdCore
import AdapterdTestSupport
import Foundation
import Testing

/// `adapterctl top` as an operator sees it: under a pseudo-terminal, fed by a real worker's metrics topic.
@Suite("adapterctl top", .serialized)
struct TopCommandTests {
    static let binary = Harness.root + "/.build/debug/adapterctl"

    @Test("top renders a screen per metrics document under a pseudo-terminal: worker health and a row per adapter version")
    func rendersUnderAPTY() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build adapterctl first (scripts/test does)")
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/script"), "util-linux's script(1) provides the pseudo-terminal")
        let broker = try Harness.broker()
        var configuration = Harness.configuration(broker: broker)
        configuration.metricsInterval = .seconds(1)
        let worker = try await RunningWorker(configuration)
        let client = try await AdapterdClient(brokerURL: broker.url, worker: configuration.workerID)
        for index in 0..<4 {
            var request = Adapterd_V1_InferRequest()
            request.text = "reading \(index)"
            request.adapter = "intent"
            _ = try await client.infer(request)
        }
        let output = Harness.temporaryDirectory() + "/top.txt"
        let command = "\(Self.binary) top --broker \(broker.url) --worker \(configuration.workerID) --iterations 2"
        let pid = try ChildProcess.spawn("/usr/bin/script", arguments: ["-q", "-e", "-c", command, output])
        let code = ChildProcess.wait(pid, timeout: .seconds(30))
        #expect(code == 0)
        let screen = try String(contentsOfFile: output, encoding: .utf8)
        #expect(screen.contains("\u{1B}[2J"), "a terminal gets each screen redrawn in place")
        #expect(screen.contains(configuration.workerID + "  ONLINE"))
        #expect(screen.contains("ADAPTER") && screen.contains("P95 ms"))
        #expect(screen.contains("  merged "), "the worker block shows its merged adapters and their budget")
        let intentRow = screen.split(whereSeparator: \.isNewline).last { $0.hasPrefix("intent ") }
        #expect(intentRow?.contains("active") == true && intentRow?.contains("resident") == true)
        #expect(intentRow.map { $0.split(separator: " ").contains("4") } == true, "the row shows the 4 requests: \(intentRow ?? "")")
        client.close()
        try await worker.stop()
    }
}
