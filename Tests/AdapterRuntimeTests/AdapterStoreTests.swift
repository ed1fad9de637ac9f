import AdapterFormats
import AdapterRuntime
import Foundation
import Testing

@Suite("AdapterStore")
struct AdapterStoreTests {
    static let root: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static func adapter(_ name: String) -> String { root + "/Tests/AdapterEngineTests/Fixtures/minilm-lora/adapters/" + name }

    static func store() throws -> AdapterStore {
        try AdapterStore(dataDirectory: NSTemporaryDirectory() + "adapterd-store-" + UUID().uuidString.prefix(8))
    }

    static func record(_ name: String, _ version: String, sha256: String, state: AdapterState = .staged) -> AdapterVersionRecord {
        AdapterVersionRecord(
            name: name, version: version, sha256: sha256, sizeBytes: 1, rank: 8, targets: ["query"], baseFingerprint: "base",
            labels: ["a"], source: "test", state: state)
    }

    @Test("imports adapter files once under their sha256, byte for byte")
    func contentAddressed() throws {
        let store = try Self.store()
        let sha = try store.importFiles(from: Self.adapter("intent"))
        #expect(try store.importFiles(from: Self.adapter("intent")) == sha)
        let copied = try Data(contentsOf: URL(fileURLWithPath: store.directory(forSHA256: sha) + "/adapter_model.safetensors"))
        let original = try Data(contentsOf: URL(fileURLWithPath: Self.adapter("intent") + "/adapter_model.safetensors"))
        #expect(copied == original)
        #expect(try AdapterDigest.sha256(ofAdapterAt: store.directory(forSHA256: sha)) == sha)
        #expect(try store.importFiles(from: Self.adapter("severity")) != sha)
    }

    @Test("a directory without adapter files is refused")
    func notAnAdapter() throws {
        let store = try Self.store()
        #expect(throws: StoreError.notAnAdapter(directory: NSTemporaryDirectory(), missing: "adapter_config.json")) {
            try store.importFiles(from: NSTemporaryDirectory())
        }
    }

    @Test("names with path separators or '..' are refused before anything is written")
    func nameValidation() throws {
        let store = try Self.store()
        for bad in ["../etc", "a/b", "", ".hidden", String(repeating: "x", count: 65)] {
            #expect(throws: StoreError.self) { try store.register(Self.record(bad, "v1", sha256: "s"), actor: "t") }
        }
        #expect(try store.versions().isEmpty)
    }

    @Test("activation is atomic, rollback returns to the previous version, and the audit trail records both")
    func activateAndRollback() throws {
        let store = try Self.store()
        _ = try store.register(Self.record("intent", "v1", sha256: "s1"), actor: "ctl")
        _ = try store.register(Self.record("intent", "v2", sha256: "s2"), actor: "ctl")
        try store.activate(name: "intent", version: "v1", actor: "ctl", reason: "first")
        try store.activate(name: "intent", version: "v2", actor: "ctl", reason: "new model")
        var states = try store.versions(name: "intent").map { "\($0.version)=\($0.state.rawValue)" }
        #expect(states == ["v1=retired", "v2=active"])
        let back = try store.rollback(name: "intent", actor: "guard", reason: "error rate 12% > 5%")
        #expect(back.version == "v1")
        states = try store.versions(name: "intent").map { "\($0.version)=\($0.state.rawValue)" }
        #expect(states == ["v1=active", "v2=retired"])
        let trail = try store.history(name: "intent").map { "\($0.action) \($0.version) by \($0.actor)" }
        #expect(trail == ["loaded v1 by ctl", "activated v1 by ctl", "loaded v2 by ctl", "activated v2 by ctl", "rolled back v1 by guard"])
    }

    @Test("a name's first version is registered active in the same transaction; later versions wait for activation")
    func firstVersionActiveOnRegister() throws {
        let store = try Self.store()
        #expect(try store.register(Self.record("intent", "v1", sha256: "s1"), actor: "ctl").state == .active)
        #expect(try store.register(Self.record("intent", "v2", sha256: "s2"), actor: "ctl").state == .staged)
        var failed = Self.record("other", "v1", sha256: "s3")
        failed.state = .failed
        #expect(try store.register(failed, actor: "ctl").state == .failed)
        #expect(try store.history(name: "intent").map(\.action) == [.loaded, .activated, .loaded])
    }

    @Test("removing the active version makes the newest remaining one active in the same transaction")
    func removingActivePromotesNewest() throws {
        let store = try Self.store()
        _ = try store.register(Self.record("intent", "v1", sha256: "s1"), actor: "ctl")
        _ = try store.register(Self.record("intent", "v2", sha256: "s2"), actor: "ctl")
        #expect(try store.remove(name: "intent", version: "v1", actor: "ctl")?.version == "v2")
        #expect(try store.versions(name: "intent").map(\.state) == [.active])
        #expect(try store.remove(name: "intent", version: "v2", actor: "ctl") == nil)
    }

    @Test("a guard rollback ends the split, releases the canary's pins and records why in one step")
    func endRolloutIsOneStep() throws {
        let store = try Self.store()
        _ = try store.register(Self.record("intent", "v1", sha256: "s1"), actor: "ctl")
        _ = try store.register(Self.record("intent", "v2", sha256: "s2"), actor: "ctl")
        try store.save(rollout: Rollout(name: "intent", splits: ["v1": 50, "v2": 50]), name: "intent")
        let later = Date().addingTimeInterval(3600)
        try store.pin([
            SessionRecord(session: "a", adapter: "intent", version: "v2", expiresAt: later),
            SessionRecord(session: "b", adapter: "intent", version: "v1", expiresAt: later),
        ])
        try store.endRollout(name: "intent", canary: "v2", reason: "p95 latency 3.1x")
        #expect(try store.rollouts().isEmpty)
        #expect(try store.sessions().map(\.session) == ["b"])
        #expect(try store.history(name: "intent").last?.action == .rolledBack)
    }

    @Test("files a killed load left in the store, and staging directories, are removed; registered ones stay")
    func unreferencedFilesRemoved() throws {
        let store = try Self.store()
        let kept = String(repeating: "a", count: 64), orphan = String(repeating: "b", count: 64)
        for item in [kept, orphan, ".incoming-1234", "notes"] {
            try FileManager.default.createDirectory(atPath: store.dataDirectory + "/adapters/" + item, withIntermediateDirectories: true)
        }
        _ = try store.register(Self.record("intent", "v1", sha256: kept), actor: "ctl")
        #expect(Set(try store.removeUnreferencedFiles()) == [orphan, ".incoming-1234"])
        let left = try FileManager.default.contentsOfDirectory(atPath: store.dataDirectory + "/adapters")
        #expect(Set(left) == [kept, "notes"])
    }

    @Test("the same (name, version) with other contents is a conflict; with the same contents it is a no-op")
    func conflicts() throws {
        let store = try Self.store()
        _ = try store.register(Self.record("intent", "v1", sha256: "s1"), actor: "t")
        #expect(throws: StoreError.conflict(name: "intent", version: "v1", existingSHA256: "s1")) {
            try store.register(Self.record("intent", "v1", sha256: "other"), actor: "t")
        }
        _ = try store.register(Self.record("intent", "v1", sha256: "s1"), actor: "t")
        #expect(try store.history(name: "intent").map(\.action) == [.loaded, .activated], "registered (and activated) once")
    }

    @Test("registry state survives reopening the SQLite file")
    func persistence() throws {
        let directory = NSTemporaryDirectory() + "adapterd-store-" + UUID().uuidString.prefix(8)
        do {
            let store = try AdapterStore(dataDirectory: directory)
            _ = try store.register(Self.record("severity", "v3", sha256: "s3"), actor: "t")
            try store.activate(name: "severity", version: "v3", actor: "t", reason: "")
        }
        let reopened = try AdapterStore(dataDirectory: directory)
        #expect(try reopened.versions().map(\.state) == [.active])
        #expect(throws: StoreError.nothingToRollBackTo(name: "severity")) { try reopened.rollback(name: "severity", actor: "t", reason: "") }
    }
}

/// Registries that cannot be trusted are refused, never silently replaced.
@Suite("AdapterStore on damaged files")
struct AdapterStoreDamageTests {
    static func directory() throws -> String {
        let path = NSTemporaryDirectory() + "adapterd-store-damage-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test("A 0-byte registry file is an error naming the file, and is left as it was")
    func emptyFileRefused() throws {
        let path = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(FileManager.default.createFile(atPath: path + "/adapterd.sqlite", contents: Data()))
        #expect { try AdapterStore(dataDirectory: path) } throws: { error in
            "\(error)".contains("adapterd.sqlite is an empty file")
        }
        #expect((try FileManager.default.attributesOfItem(atPath: path + "/adapterd.sqlite")[.size] as? Int) == 0)
    }

    @Test("A damaged registry file is an error saying what to do")
    func damagedFileRefused() throws {
        let path = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(FileManager.default.createFile(atPath: path + "/adapterd.sqlite", contents: Data(repeating: 0x5A, count: 8192)))
        #expect { try AdapterStore(dataDirectory: path) } throws: { error in
            "\(error)".contains("cannot be read") && "\(error)".contains("restore it from a backup")
        }
    }

    @Test("A new data directory starts an empty registry")
    func freshStart() throws {
        let path = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try AdapterStore(dataDirectory: path).versions().isEmpty)
    }
}

@Suite("Rollout")
struct RolloutTests {
    @Test("a 90/10 split over 1000 sessions lands within ±4% and never flips a session")
    func splitAndStickiness() throws {
        let rollout = try #require(Rollout(name: "intent", splits: ["v1": 90, "v2": 10]))
        let sessions = (0..<1000).map { "session-\($0)" }
        let assigned = sessions.map { rollout.version(for: $0) }
        let canary = Double(assigned.filter { $0 == "v2" }.count) / 1000
        #expect(abs(canary - 0.10) <= 0.04, "canary share \(canary)")
        #expect(sessions.map { rollout.version(for: $0) } == assigned)
        // The same split given in another order assigns identically (pool-wide agreement).
        let reordered = try #require(Rollout(name: "intent", splits: ["v2": 10, "v1": 90]))
        #expect(sessions.map { reordered.version(for: $0) } == assigned)
    }

    @Test("splits without positive weight are refused")
    func invalidSplits() {
        #expect(Rollout(name: "x", splits: [:]) == nil)
        #expect(Rollout(name: "x", splits: ["v1": 0]) == nil)
        #expect(Rollout(name: "x", splits: ["v1": -5, "v2": 10]) == nil)
    }
}
