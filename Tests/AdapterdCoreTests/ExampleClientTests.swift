import AdapterdCore
import AdapterdTestSupport
import Foundation
import Testing

/// The clients in examples/, run as a user runs them (Python with paho-mqtt, the shell with mosquitto_rr), against
/// a real mosquitto and an in-process worker with `intent` and `severity` loaded.
@Suite("Example clients", .serialized)
struct ExampleClientTests {
    static let python = Harness.root + "/examples/python/adapterd_infer.py"
    static let shell = Harness.root + "/examples/shell/infer.sh"

    /// What a finished example printed and how it exited.
    struct Finished {
        let code: Int32
        let stdout: String
        let stderr: String
        var lines: [Substring] { stdout.split(separator: "\n") }
    }

    struct RanTooLong: Error, CustomStringConvertible {
        let command: [String]
        let limit: Duration
        var description: String { "\(command.joined(separator: " ")) was still running after \(limit); killed it" }
    }

    /// Runs `/usr/bin/env command…` and waits for it at most `limit`: past that it is killed and the test fails.
    static func run(_ command: [String], limit: Duration = .seconds(30)) async throws -> Finished {
        let directory = Harness.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let stdoutPath = directory + "/stdout", stderrPath = directory + "/stderr"
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = command
        process.standardInput = FileHandle.nullDevice
        // Files, not pipes: nothing has to drain them while the process runs.
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: stdoutPath))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        // Exit is an event: the termination handler ends the stream, or `limit` passes first.
        let (exits, exited) = AsyncStream.makeStream(of: Void.self)
        process.terminationHandler = { _ in exited.finish() }
        try process.run()
        let finished = await withTaskGroup(of: Bool.self) { group in
            group.addTask { for await _ in exits {}; return true }
            group.addTask {
                try? await Task.sleep(for: limit)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            exited.finish()
            return first
        }
        if !finished, process.isRunning {
            // SIGKILL: Foundation's Process passes on this thread's signal mask, in which SIGTERM may be blocked.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw RanTooLong(command: command, limit: limit)
        }
        process.waitUntilExit()
        return Finished(
            code: process.terminationStatus,
            stdout: (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "")
    }

    /// A broker and a worker for `body`, both stopped afterwards whether `body` returns or throws.
    static func withWorker(_ body: (MosquittoProcess, RunningWorker) async throws -> Void) async throws {
        let broker = try Harness.broker()
        defer { broker.stop() }
        let worker = try await RunningWorker(Harness.configuration(broker: broker))
        do {
            try await body(broker, worker)
        } catch {
            try? await worker.stop()
            throw error
        }
        try await worker.stop()
    }

    /// paho-mqtt 2.x must be importable by the python3 on PATH (scripts/bootstrap installs it).
    static func requirePaho() async throws {
        let check = try await run(["python3", "-c", "import paho.mqtt.client as m; m.CallbackAPIVersion.VERSION2"])
        try #require(check.code == 0, "python3 cannot import paho-mqtt 2.x; run scripts/bootstrap: \(check.stderr)")
    }

    @Test("the Python client prints one OK reply line with a label per text, over one connection")
    func pythonReplies() async throws {
        try await Self.requirePaho()
        try await Self.withWorker { broker, worker in
            let result = try await Self.run([
                "python3", Self.python, "--broker", broker.url, "--worker", worker.worker.topics.worker,
                "--adapter", "intent", "--sensor", "keypad/k7", "--timeout", "20", "lock the door", "turn on the kitchen lights",
            ])
            #expect(result.code == 0, "exit \(result.code): \(result.stderr)")
            #expect(result.lines.count == 2, "\(result.stdout)")
            for line in result.lines {
                #expect(line.contains(#""status":"OK""#) && line.contains(#""label""#), "\(line)")
            }
            #expect(result.lines.first?.contains(#""label":"security""#) == true, "\(result.stdout)")
        }
    }

    @Test("the Python client exits non-zero with NOT_FOUND for an unknown adapter, and with 3 when no worker answers")
    func pythonErrors() async throws {
        try await Self.requirePaho()
        try await Self.withWorker { broker, worker in
            let unknown = try await Self.run([
                "python3", Self.python, "--broker", broker.url, "--worker", worker.worker.topics.worker,
                "--adapter", "nosuch", "--timeout", "20", "lock the door",
            ])
            #expect(unknown.code != 0)
            #expect(unknown.stderr.contains("NOT_FOUND") && unknown.stderr.contains("nosuch"), "\(unknown.stderr)")
            let nobody = try await Self.run(["python3", Self.python, "--broker", broker.url, "--worker", "nobody", "--timeout", "1", "hello"])
            #expect(nobody.code == 3, "exit \(nobody.code): \(nobody.stderr)")
        }
    }

    @Test("the shell example (mosquitto_rr) prints the reply with a label, and exits 1 on a NOT_FOUND reply")
    func shellReplies() async throws {
        try await Self.withWorker { broker, worker in
            let url = try #require(URLComponents(string: broker.url))
            let host = try #require(url.host), port = try #require(url.port)
            let id = worker.worker.topics.worker
            let result = try await Self.run(["bash", Self.shell, host, String(port), id, "lock the door", "intent"])
            #expect(result.code == 0, "exit \(result.code): \(result.stderr)")
            #expect(result.stdout.contains(#""status":"OK""#) && result.stdout.contains(#""label":"security""#), "\(result.stdout)")
            let unknown = try await Self.run(["bash", Self.shell, host, String(port), id, "lock the door", "nosuch"])
            #expect(unknown.code == 1, "exit \(unknown.code): \(unknown.stderr)")
            #expect(unknown.stdout.contains(#""status":"NOT_FOUND""#), "\(unknown.stdout)")
        }
    }
}
