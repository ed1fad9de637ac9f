/// Where an adapter version is in its lifecycle.
public enum AdapterState: String, Codable, Sendable, CaseIterable {
    /// Validated and stored; serves only requests that name this version.
    case staged
    /// The version a name resolves to.
    case active
    /// Was active; kept for rollback.
    case retired
    /// Refused (validation or smoke test); kept for the audit trail.
    case failed
}
