/// Why the HTTP listener cannot start.
public enum HTTPListenerError: Error, CustomStringConvertible {
    case badAddress(String)

    public var description: String {
        switch self {
        case .badAddress(let address): return "--http '\(address)': expected HOST:PORT, e.g. 127.0.0.1:9464"
        }
    }
}
