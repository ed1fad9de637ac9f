import AdapterdCore
import AdapterdTestSupport
import Foundation
import Testing

/// adapterd's command line against the settings it declares.
@Suite("adapterd command line")
struct AdapterdCommandTests {
    @Test("every setting that declares a flag is an option of adapterd, with its value name")
    func everyFlagIsAnOption() throws {
        let directory = Harness.temporaryDirectory()
        let output = directory + "/help.txt"
        let pid = try ChildProcess.spawn(AdapterdDaemon.binary, arguments: ["--help"], output: output)
        #expect(ChildProcess.wait(pid, timeout: .seconds(30)) == 0)
        let help = try String(contentsOfFile: output, encoding: .utf8)
        for setting in Settings.all {
            guard let flag = setting.flagName else { continue }
            #expect(help.contains(flag + " ") || help.contains(flag + "\n"), "adapterd --help does not list \(flag) (setting \(setting.key))")
        }
    }
}
