/// Checks adapter names and versions before they are used as keys, topic parts or path components.
public enum AdapterName {
    /// Longest name or version accepted.
    public static let maxLength = 64

    /// What is wrong with `value`, or nil when it is 1–64 characters of letters, digits, `.`, `_`, `-`, does not
    /// start with `.` or `-`, and holds no `..`.
    public static func problem(with value: String) -> String? {
        if value.isEmpty { return "it is required" }
        if value.count > maxLength { return "it is longer than \(maxLength) characters" }
        let allowed = value.unicodeScalars.allSatisfy { scalar in
            switch scalar {
            case "a"..."z", "A"..."Z", "0"..."9", ".", "_", "-": return true
            default: return false
            }
        }
        guard allowed, !value.hasPrefix("."), !value.hasPrefix("-"), !value.contains("..") else {
            return "it may hold only letters, digits, '.', '_' and '-', and may not start with '.' or '-' or contain '..'"
        }
        return nil
    }
}
