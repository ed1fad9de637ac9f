import MQTTRPC

/// Checks adapter names and versions before they are used as keys or path components.
public enum AdapterName {
    /// Longest name or version accepted.
    public static let maxLength = 64

    /// Throws `INVALID_ARGUMENT` unless `value` is 1–64 characters of letters, digits, `.`, `_`, `-`, does not
    /// start with `.` or `-`, and is not `..`.
    public static func validate(_ value: String, field: String) throws(RPCError) {
        guard !value.isEmpty else { throw RPCError(.invalidArgument, "\(field) is required") }
        guard value.count <= maxLength else { throw RPCError(.invalidArgument, "\(field) is longer than \(maxLength) characters") }
        let allowed = value.unicodeScalars.allSatisfy { scalar in
            switch scalar {
            case "a"..."z", "A"..."Z", "0"..."9", ".", "_", "-": return true
            default: return false
            }
        }
        guard allowed, !value.hasPrefix("."), !value.hasPrefix("-"), !value.contains("..") else {
            throw RPCError(.invalidArgument, "\(field) '\(value)' may hold only letters, digits, '.', '_' and '-', and may not start with '.' or '-' or contain '..'")
        }
    }
}
