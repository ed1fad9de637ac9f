import AdapterdAPI
import AdapterdClient
import AdapterdCore
import AdapterRuntime
import Foundation
import MQTTRPC

/// adapterd processes (the debug binary) over one broker and one data directory, started, killed and stopped in
/// turn: for what only a separate process can show (a trap, a kill -9, a signal, a restart).
public struct AdapterdDaemon {
    /// The debug build's adapterd.
    public static let binary = Harness.root + "/.build/debug/adapterd"

    /// Why a daemon did not come up.
    public enum Failure: Error, CustomStringConvertible {
        case notReady(log: String)

        public var description: String {
            switch self {
            case .notReady(let log): return "adapterd did not answer GetStatus; its log: \(log)"
            }
        }
    }

    public let broker: MosquittoProcess
    public let worker: String
    public let directory = Harness.temporaryDirectory()
    public var arguments: [String] = []
    private var starts = 0

    /// A daemon on `broker` (a new one when nil) with `adapters` preloaded (`name@version=path`), a configuration
    /// file's text and further command-line arguments.
    public init(
        broker: MosquittoProcess? = nil, worker: String = "fault" + UUID().uuidString.prefix(6).lowercased(), adapters: [String] = [],
        config: String? = nil, extraArguments: [String] = []
    ) throws {
        self.broker = try broker ?? Harness.broker()
        self.worker = worker
        arguments = [
            "--broker", self.broker.url, "--worker-id", worker, "--model", Harness.modelDirectory, "--data-dir", directory,
            "--adapter-root", Harness.root,
        ] + adapters.flatMap { ["--adapter", $0] } + extraArguments
        if let config {
            let file = directory + "/adapterd.yaml"
            try config.write(toFile: file, atomically: true, encoding: .utf8)
            arguments += ["--config", file]
        }
    }

    /// The log of the latest start.
    public var logPath: String { directory + "/adapterd-\(starts).log" }

    /// Starts adapterd (armed to kill itself at `crashAt`) without waiting for it.
    public mutating func launch(crashAt: CrashPoint? = nil) throws -> pid_t {
        starts += 1
        var environment = ProcessInfo.processInfo.environment
        environment[CrashPoint.environmentVariable] = crashAt?.rawValue
        return try ChildProcess.spawn(Self.binary, arguments: arguments, output: logPath, environment: environment)
    }

    /// Starts adapterd, armed to kill itself at `crashAt`, and returns it with a client once it answers.
    public mutating func start(crashAt: CrashPoint? = nil) async throws -> (pid: pid_t, client: AdapterdClient) {
        let pid = try launch(crashAt: crashAt)
        let client = try await AdapterdClient(brokerURL: broker.url, worker: worker)
        guard await Self.answers(client, while: pid) else {
            client.close()
            ChildProcess.terminate(pid, within: .seconds(1))
            throw Failure.notReady(log: (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? logPath)
        }
        return (pid, client)
    }

    /// Whether the worker behind `client` answers GetStatus within about 30 s, giving up early once `pid` exited.
    public static func answers(_ client: AdapterdClient, while pid: pid_t) async -> Bool {
        await Harness.answersStatus(client, within: .seconds(30)) { ChildProcess.isRunning(pid) }
    }

    /// Whether `pid` died of SIGKILL (its crash point) within `timeout`.
    public func killedItself(_ pid: pid_t, timeout: Duration = .seconds(30)) -> Bool {
        ChildProcess.wait(pid, timeout: timeout) == 128 + SIGKILL
    }

    /// The registry as the process left it.
    public func store() throws -> AdapterStore { try AdapterStore(dataDirectory: directory) }
}
