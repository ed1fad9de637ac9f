import Foundation

/// Session affinity: which version of an adapter each session got first, kept until the pin expires, so a session
/// never flips between versions mid-conversation. Authoritative in memory and bounded; the registry writes the new
/// pins to SQLite behind (`takeUnsaved`) so a restart keeps them.
struct SessionPins {
    /// A (session, adapter name) pair.
    struct Key: Hashable {
        let session: String
        let adapter: String
    }

    struct Pin {
        let version: String
        let expiresAt: Date
    }

    /// Most pins kept; beyond it the soonest to expire go first.
    let maxPins: Int
    private var pins: [Key: Pin] = [:]
    private var unsaved: [Key: Pin] = [:]
    private var pinnedSinceBound = 0

    /// An empty set bounded at `maxPins` (16 at least).
    init(maxPins: Int) {
        self.maxPins = max(16, maxPins)
    }

    /// Pins held in memory.
    var count: Int { pins.count }

    /// Whether any pin awaits its SQLite write.
    var hasUnsaved: Bool { !unsaved.isEmpty }

    /// Takes the pins SQLite already holds (after a restart); the expiry cutoff for SQLite when that went past the bound.
    mutating func restore(_ records: [SessionRecord], now: Date = Date()) -> Date? {
        for record in records {
            pins[Key(session: record.session, adapter: record.adapter)] = Pin(version: record.version, expiresAt: record.expiresAt)
        }
        return pins.count > maxPins ? bound(now: now) : nil
    }

    /// The version `session` is pinned to for `adapter`, while the pin lasts.
    func version(session: String, adapter: String, now: Date = Date()) -> String? {
        guard let pin = pins[Key(session: session, adapter: adapter)], pin.expiresAt > now else { return nil }
        return pin.version
    }

    /// Pins `session` to `version` of `adapter` until `expiresAt`. Every 4,096 pins, or past the bound, drops the
    /// expired and the soonest to expire: returns the expiry cutoff SQLite must prune to, when it did.
    mutating func pin(session: String, adapter: String, version: String, expiresAt: Date, now: Date = Date()) -> Date? {
        let key = Key(session: session, adapter: adapter)
        let pin = Pin(version: version, expiresAt: expiresAt)
        pins[key] = pin
        unsaved[key] = pin
        pinnedSinceBound += 1
        guard pinnedSinceBound >= 4096 || pins.count > maxPins else { return nil }
        pinnedSinceBound = 0
        return bound(now: now)
    }

    /// Drops expired pins and, beyond `maxPins`, the soonest to expire (down to three quarters of it, so trimming
    /// happens once per many new sessions): memory stays bounded whatever the rate of new sessions. Returns the
    /// expiry of the last pin dropped past the bound (pins expiring no later go from SQLite too), or nil.
    private mutating func bound(now: Date) -> Date? {
        pins = pins.filter { $0.value.expiresAt > now }
        guard pins.count > maxPins else { return nil }
        let keep = maxPins * 3 / 4
        let sorted = pins.sorted { $0.value.expiresAt > $1.value.expiresAt }
        for (key, _) in sorted[keep...] {
            pins[key] = nil
            unsaved[key] = nil
        }
        return sorted[keep].value.expiresAt
    }

    /// Releases every session pinned to `version` of `adapter` (a canary rolled back).
    mutating func release(adapter: String, version: String) {
        for (key, pin) in pins where key.adapter == adapter && pin.version == version {
            pins[key] = nil
            unsaved[key] = nil
        }
    }

    /// Removes every pin of `session`; returns how many were live.
    mutating func remove(session: String, now: Date = Date()) -> Int {
        let keys = pins.keys.filter { $0.session == session }
        let live = keys.filter { (pins[$0]?.expiresAt ?? now) > now }.count
        for key in keys {
            pins[key] = nil
            unsaved[key] = nil
        }
        return live
    }

    /// The pins made since the last call, as SQLite rows; they count as saved from now on.
    mutating func takeUnsaved() -> [SessionRecord] {
        defer { unsaved = [:] }
        return unsaved.map { SessionRecord(session: $0.key.session, adapter: $0.key.adapter, version: $0.value.version, expiresAt: $0.value.expiresAt) }
    }

    /// Puts back rows `takeUnsaved` gave whose write failed (pins made since win).
    mutating func returnUnsaved(_ records: [SessionRecord]) {
        for record in records {
            let key = Key(session: record.session, adapter: record.adapter)
            if unsaved[key] == nil { unsaved[key] = Pin(version: record.version, expiresAt: record.expiresAt) }
        }
    }
}
