import AdapterdCore
import Foundation

/// A child process a test started. It is stopped (SIGTERM, then SIGKILL) when the test lets go of it, on every
/// path out of the test — a thrown error or a failing `#require` included — unless the test already saw it exit;
/// once reaped, its number is never signalled again (the system may have given it to another process).
public final class TestProcess: @unchecked Sendable {
    /// The process id.
    public let pid: pid_t
    private let lock = NSLock()
    private var reaped = false

    /// Starts `executable` with `arguments`, its output to the file `output`.
    public init(_ executable: String, arguments: [String], output: String? = nil, environment: [String: String]? = nil) throws {
        pid = try ChildProcess.spawn(executable, arguments: arguments, output: output, environment: environment)
    }

    /// Whether it is still running.
    public var isRunning: Bool { lock.withLock { !reaped } && ChildProcess.isRunning(pid) }

    /// Sends `signal` (unless it has been reaped).
    public func signal(_ signal: Int32) {
        lock.withLock { if !reaped { _ = kill(pid, signal) } }
    }

    /// Its exit code once it exits within `timeout` (128 + the signal when a signal ended it), or nil.
    @discardableResult
    public func wait(timeout: Duration) -> Int32? {
        let code = ChildProcess.wait(pid, timeout: timeout)
        if code != nil { lock.withLock { reaped = true } }
        return code
    }

    /// Stops it: SIGTERM, and SIGKILL when it has not exited within `within`. Returns its exit code.
    @discardableResult
    public func terminate(within: Duration) -> Int32? {
        let running = lock.withLock { () -> Bool in
            defer { reaped = true }
            return !reaped
        }
        return running ? ChildProcess.terminate(pid, within: within) : nil
    }

    deinit { terminate(within: .seconds(2)) }
}
