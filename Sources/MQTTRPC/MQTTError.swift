/// Failures of the MQTT transport.
public enum MQTTError: Error, CustomStringConvertible, Sendable, Equatable {
    case invalidURL(String)
    case library(operation: String, code: Int32, message: String)
    case connectionRefused(reason: String)
    case notConnected
    case timedOut(operation: String)

    public var description: String {
        switch self {
        case .invalidURL(let url):
            return "'\(url)' is not a broker URL (expected mqtt://host:port)"
        case let .library(operation, code, message):
            return "\(operation) failed: \(message) (libmosquitto error \(code))"
        case .connectionRefused(let reason):
            return "broker refused the connection: \(reason)"
        case .notConnected:
            return "not connected to the broker"
        case .timedOut(let operation):
            return "\(operation) timed out"
        }
    }
}
