import Foundation

/// A private mosquitto broker on a loopback port: adapterd's embedded broker, and the tests' broker.
///
/// A class because it owns a child process; its state changes only through `start` / `stop`, which callers
/// serialise.
public final class MosquittoProcess: @unchecked Sendable {
    /// Why the broker could not start.
    public enum Failure: Error, CustomStringConvertible {
        case notInstalled
        case didNotStart(port: Int, log: String)

        public var description: String {
            switch self {
            case .notInstalled:
                return "mosquitto is not installed (apt-get install mosquitto, or run scripts/bootstrap)"
            case let .didNotStart(port, log):
                return "mosquitto did not start listening on 127.0.0.1:\(port): \(log)"
            }
        }
    }

    /// The TCP port the broker listens on (127.0.0.1).
    public let port: Int
    /// Directory holding the config, the log and (with persistence) the session database.
    public let directory: String
    private var pid: pid_t?

    /// `mqtt://127.0.0.1:PORT`.
    public var url: String { "mqtt://127.0.0.1:\(port)" }

    /// Prepares a broker in `directory` on `port` (a free one when nil). With `persistent`, sessions and queued
    /// QoS 1 messages survive a restart of the broker.
    public init(directory: String, port: Int? = nil, persistent: Bool = false) throws {
        self.directory = directory
        self.port = try port ?? Self.freePort()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // mosquitto started as root switches to the 'mosquitto' user, which cannot write this directory: keep it
        // running as whoever started it.
        let user = getpwuid(geteuid()).map { String(cString: $0.pointee.pw_name) } ?? "root"
        var config = """
        user \(user)
        listener \(self.port) 127.0.0.1
        allow_anonymous true
        set_tcp_nodelay true
        log_dest file \(directory)/mosquitto.log
        log_type error
        log_type warning
        max_queued_messages 10000

        """
        if persistent {
            config += "persistence true\npersistence_location \(directory)/\nautosave_interval 1\n"
        }
        try config.write(toFile: directory + "/mosquitto.conf", atomically: true, encoding: .utf8)
    }

    /// The mosquitto executable: on PATH, or where Debian installs it.
    public static func executable() -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for directory in path.split(separator: ":").map(String.init) + ["/usr/sbin", "/usr/local/sbin"] {
            let candidate = directory + "/mosquitto"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Starts the broker and waits until it accepts connections.
    public func start() throws {
        guard let executable = Self.executable() else { throw Failure.notInstalled }
        pid = try ChildProcess.spawn(executable, arguments: ["-c", directory + "/mosquitto.conf"])
        for _ in 0..<200 {
            if Self.accepts(port: port) { return }
            if !isRunning { break }
            usleep(25_000)
        }
        let log = (try? String(contentsOfFile: directory + "/mosquitto.log", encoding: .utf8)) ?? ""
        stop()
        throw Failure.didNotStart(port: port, log: log.isEmpty ? "no log" : log)
    }

    /// Whether the broker process is alive.
    public var isRunning: Bool {
        guard let pid else { return false }
        if ChildProcess.isRunning(pid) { return true }
        // Reaped: the number may soon belong to another process, so it must never be signalled again.
        self.pid = nil
        return false
    }

    /// Stops the broker (SIGTERM, so a persistent one saves its state; SIGKILL if it has not exited within five
    /// seconds) and reaps it.
    public func stop() {
        guard let pid else { return }
        self.pid = nil
        _ = ChildProcess.terminate(pid, within: .seconds(5))
    }

    deinit { stop() }

    /// A TCP port on 127.0.0.1 that nothing listens on right now.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        defer { close(fd) }
        var address = loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw POSIXError(.EADDRINUSE) }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// 127.0.0.1:`port` as a socket address.
    static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return address
    }

    /// Whether something accepts connections on the loopback `port`.
    public static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = loopback(port: port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}
