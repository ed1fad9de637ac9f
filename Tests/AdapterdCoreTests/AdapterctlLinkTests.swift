import AdapterdCore
import AdapterdTestSupport
import Foundation
import Testing

/// `adapterctl` is a client: it links the client target, not the worker's store, configuration or servers.
@Suite("adapterctl's dependencies")
struct AdapterctlLinkTests {
    @Test("the adapterctl binary holds no GRDB, Yams, Hummingbird, Prometheus or ServiceLifecycle symbols")
    func clientLinksNoServerLibraries() throws {
        let binary = Harness.root + "/.build/debug/adapterctl"
        let output = NSTemporaryDirectory() + "adapterctl-nm-\(UUID().uuidString.prefix(6)).txt"
        defer { try? FileManager.default.removeItem(atPath: output) }
        let pid = try ChildProcess.spawn("/usr/bin/nm", arguments: [binary], output: output)
        let code = try #require(ChildProcess.wait(pid, timeout: .seconds(60)), "nm did not finish in 60 s")
        #expect(code == 0)
        let symbols = try String(contentsOfFile: output, encoding: .utf8)
        #expect(symbols.contains("AdapterdClient"), "nm listed no symbols of the client target: is \(binary) built?")
        for library in ["GRDB", "Yams", "Hummingbird", "Prometheus", "ServiceLifecycle"] {
            let hits = symbols.split(separator: "\n").filter { $0.contains(library) }
            #expect(hits.isEmpty, "adapterctl links \(library): \(hits.prefix(3).joined(separator: "; "))")
        }
    }
}
