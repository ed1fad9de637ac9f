import Foundation

/// Starting and stopping child processes with clean signal state.
public enum ChildProcess {
    /// Starts `executable`, standard input from /dev/null and output to `output` (or /dev/null), with default
    /// signal handling and nothing blocked. Foundation's `Process` passes on the spawning thread's signal mask, and
    /// Swift's runtime threads block SIGTERM: a child such as mosquitto would then never see the SIGTERM that
    /// tells it to save its state and exit.
    public static func spawn(_ executable: String, arguments: [String], output: String? = nil, environment: [String: String]? = nil) throws -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let variables = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { variables.forEach { free($0) } }
        var pid: pid_t = 0
        let code = posix_spawn(&pid, executable, &actions, &attributes, argv, variables)
        guard code == 0 else { throw POSIXError(POSIXErrorCode(rawValue: code) ?? .EIO) }
        return pid
    }

    /// Whether `pid` is still running (reaping it if it has exited).
    public static func isRunning(_ pid: pid_t) -> Bool {
        var status: Int32 = 0
        return waitpid(pid, &status, WNOHANG) == 0
    }

    /// Waits up to `timeout` for `pid` to exit; its exit code, or nil when it is still running.
    public static func wait(_ pid: pid_t, timeout: Duration) -> Int32? {
        let deadline = ContinuousClock.now + timeout
        var status: Int32 = 0
        repeat {
            if waitpid(pid, &status, WNOHANG) == pid {
                return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            }
            usleep(10_000)
        } while ContinuousClock.now < deadline
        return nil
    }

    /// SIGTERM, then SIGKILL if `pid` has not exited within `within`; returns its exit code.
    @discardableResult
    public static func terminate(_ pid: pid_t, within: Duration) -> Int32? {
        kill(pid, SIGTERM)
        if let code = wait(pid, timeout: within) { return code }
        kill(pid, SIGKILL)
        return wait(pid, timeout: .seconds(5))
    }
}
