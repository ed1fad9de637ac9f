import Foundation

/// What an input router chose for a session under a route, remembered for the affinity time so the session keeps
/// its adapter (memory only, bounded: beyond `limit` the expired, then the oldest half, go).
struct RouterChoices {
    /// A (session, route name) pair.
    struct Key: Hashable {
        let session: String
        let route: String
    }

    /// Most remembered choices.
    let limit: Int
    private var choices: [Key: (adapter: String, expiresAt: Date)] = [:]

    init(limit: Int) {
        self.limit = limit
    }

    /// The adapter chosen for `session` under `route`, while it lasts.
    func choice(session: String, route: String, now: Date = Date()) -> String? {
        guard let choice = choices[Key(session: session, route: route)], choice.expiresAt > now else { return nil }
        return choice.adapter
    }

    /// Remembers `adapter` for `session` under `route` until `expiresAt`.
    mutating func remember(_ adapter: String, session: String, route: String, expiresAt: Date, now: Date = Date()) {
        if choices.count >= limit {
            choices = choices.filter { $0.value.expiresAt > now }
            if choices.count >= limit {
                for (key, _) in choices.sorted(by: { $0.value.expiresAt < $1.value.expiresAt }).prefix(limit / 2) { choices[key] = nil }
            }
        }
        choices[Key(session: session, route: route)] = (adapter, expiresAt)
    }

    /// Forgets every choice of `session`.
    mutating func forget(session: String) {
        choices = choices.filter { $0.key.session != session }
    }
}
