import Foundation
import Testing
@testable import AdapterRuntime

@Suite("SessionPins")
struct SessionPinsTests {
    @Test("a session keeps its version until the pin expires, per adapter name")
    func pinLastsUntilExpiry() {
        var pins = SessionPins(maxPins: 100)
        let now = Date()
        _ = pins.pin(session: "s", adapter: "intent", version: "v2", expiresAt: now.addingTimeInterval(60), now: now)
        #expect(pins.version(session: "s", adapter: "intent", now: now) == "v2")
        #expect(pins.version(session: "s", adapter: "severity", now: now) == nil)
        #expect(pins.version(session: "s", adapter: "intent", now: now.addingTimeInterval(61)) == nil)
    }

    @Test("past the bound the soonest to expire go, down to three quarters, and SQLite is told the cutoff")
    func boundDropsSoonestToExpire() {
        var pins = SessionPins(maxPins: 16)
        let now = Date()
        var cutoff: Date?
        for index in 0...16 {
            cutoff = pins.pin(session: "s\(index)", adapter: "a", version: "v1", expiresAt: now.addingTimeInterval(Double(100 + index)), now: now) ?? cutoff
        }
        #expect(pins.count == 12, "kept \(pins.count)")
        #expect(pins.version(session: "s16", adapter: "a", now: now) == "v1", "the latest to expire stay")
        #expect(pins.version(session: "s0", adapter: "a", now: now) == nil, "the soonest to expire go")
        #expect(cutoff == now.addingTimeInterval(104))
    }

    @Test("a released canary and a cleared session lose their pins, and only live ones are counted")
    func releaseAndRemove() {
        var pins = SessionPins(maxPins: 100)
        let now = Date()
        _ = pins.pin(session: "s1", adapter: "a", version: "canary", expiresAt: now.addingTimeInterval(60), now: now)
        _ = pins.pin(session: "s2", adapter: "a", version: "stable", expiresAt: now.addingTimeInterval(60), now: now)
        _ = pins.pin(session: "s2", adapter: "b", version: "v1", expiresAt: now.addingTimeInterval(-1), now: now)
        pins.release(adapter: "a", version: "canary")
        #expect(pins.version(session: "s1", adapter: "a", now: now) == nil)
        #expect(pins.remove(session: "s2", now: now) == 1, "one live pin, one expired")
        #expect(pins.count == 0)
    }

    @Test("new pins are handed to SQLite once; a failed write puts them back without overwriting newer ones")
    func unsavedRoundTrip() {
        var pins = SessionPins(maxPins: 100)
        let now = Date()
        _ = pins.pin(session: "s", adapter: "a", version: "v1", expiresAt: now.addingTimeInterval(60), now: now)
        let batch = pins.takeUnsaved()
        #expect(batch.map(\.version) == ["v1"] && !pins.hasUnsaved)
        _ = pins.pin(session: "s", adapter: "a", version: "v2", expiresAt: now.addingTimeInterval(60), now: now)
        pins.returnUnsaved(batch)
        #expect(pins.takeUnsaved().map(\.version) == ["v2"])
    }
}

@Suite("RouterChoices")
struct RouterChoicesTests {
    @Test("a choice lasts for its session and route until it expires, and a cleared session forgets it")
    func choiceLastsPerSessionAndRoute() {
        var choices = RouterChoices(limit: 10)
        let now = Date()
        choices.remember("lights", session: "s", route: "voice", expiresAt: now.addingTimeInterval(60), now: now)
        #expect(choices.choice(session: "s", route: "voice", now: now) == "lights")
        #expect(choices.choice(session: "s", route: "other", now: now) == nil)
        #expect(choices.choice(session: "s", route: "voice", now: now.addingTimeInterval(61)) == nil)
        choices.forget(session: "s")
        #expect(choices.choice(session: "s", route: "voice", now: now) == nil)
    }

    @Test("past the limit the oldest half goes")
    func boundedByLimit() {
        var choices = RouterChoices(limit: 10)
        let now = Date()
        for index in 0...10 {
            choices.remember("a\(index)", session: "s\(index)", route: "r", expiresAt: now.addingTimeInterval(Double(100 + index)), now: now)
        }
        #expect(choices.choice(session: "s0", route: "r", now: now) == nil)
        #expect(choices.choice(session: "s10", route: "r", now: now) == "a10")
    }
}
