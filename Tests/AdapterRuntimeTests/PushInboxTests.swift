import AdapterFormats
import AdapterRuntime
import Foundation
import Testing

@Suite("AdapterBundle and PushInbox")
struct PushInboxTests {
    static func temporary() -> String {
        let path = NSTemporaryDirectory() + "adapterd-push-" + UUID().uuidString.prefix(8)
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func inbox(_ directory: String = temporary(), maxBytes: Int64 = 64 << 20) -> PushInbox {
        PushInbox(directory: directory, maxBytes: maxBytes, trusted: try! TrustedKeys([]), requireSigned: false)
    }

    @Test("a bundle unpacks to the same files, and its sha256 is the adapter's content address")
    func bundleRoundTrip() throws {
        let source = AdapterStoreTests.adapter("intent")
        let bundle = try AdapterBundle.encode(directory: source)
        #expect(AdapterDigest.sha256(of: bundle) == (try AdapterDigest.sha256(ofAdapterAt: source)))
        let target = Self.temporary()
        try bundle.withUnsafeBytes { try AdapterBundle.unpack($0, into: target) }
        for file in ["adapter_config.json", "adapter_model.safetensors"] {
            #expect(FileManager.default.contents(atPath: target + "/" + file) == FileManager.default.contents(atPath: source + "/" + file))
        }
    }

    @Test("bundles with unknown or repeated file names, or lengths past the end, are refused")
    func malformedBundles() throws {
        func bundle(_ files: [(String, [UInt8])], claim: UInt64? = nil) -> [UInt8] {
            var out: [UInt8] = []
            for (name, bytes) in files {
                out += Array(name.utf8) + [0]
                withUnsafeBytes(of: (claim ?? UInt64(bytes.count)).littleEndian) { out += $0 }
                out += bytes
            }
            return out
        }
        let cases: [[UInt8]] = [
            bundle([("../../etc/passwd", [1])]),
            bundle([("adapter_model.safetensors", [1]), ("adapter_config.json", [2])]),
            bundle([("adapter_config.json", [1]), ("adapter_config.json", [2])]),
            bundle([("adapter_config.json", [1, 2, 3])], claim: 1 << 40),
            bundle([("adapter_config.json", [1])]),
        ]
        for bytes in cases {
            #expect(throws: PushError.self) { try bytes.withUnsafeBytes { try AdapterBundle.unpack($0, into: Self.temporary()) } }
        }
    }

    @Test("chunks arriving out of order and twice assemble the payload; the same begin resumes, another one restarts")
    func chunksInAnyOrder() async throws {
        let directory = Self.temporary()
        let payload = try AdapterBundle.encode(directory: AdapterStoreTests.adapter("intent"))
        let manifest = PushManifest(name: "intent", version: "v1", size: Int64(payload.count), sha256: AdapterDigest.sha256(of: payload), chunkSize: 32 << 10)
        let inbox = Self.inbox(directory)
        #expect(try await inbox.begin(manifest, signature: []).missing.count == manifest.chunkCount)
        let order = Array((0..<manifest.chunkCount).reversed()) + [0, 1]
        for index in order.dropLast(4) {
            let start = index * manifest.chunkSize
            _ = try await inbox.put(name: "intent", version: "v1", index: index, data: Array(payload[start..<(start + manifest.length(ofChunk: index))]))
        }
        // A new inbox over the same directory (a restarted worker) sees the same progress.
        let reopened = Self.inbox(directory)
        let resumed = try await reopened.begin(manifest, signature: [])
        #expect(resumed.missing == Array(0..<2))
        for index in order.suffix(4) {
            let start = index * manifest.chunkSize
            _ = try await reopened.put(name: "intent", version: "v1", index: index, data: Array(payload[start..<(start + manifest.length(ofChunk: index))]))
        }
        let verified = try await reopened.commit(name: "intent", version: "v1")
        #expect(try AdapterDigest.sha256(ofAdapterAt: verified.directory) == manifest.sha256)

        var other = manifest
        other.chunkSize = 64 << 10
        #expect(try await reopened.begin(other, signature: []).missing.count == other.chunkCount, "another manifest starts over")
    }

    @Test("a push larger than the free disk space is refused before anything is written")
    func diskSpaceChecked() async throws {
        let directory = Self.temporary()
        let inbox = Self.inbox(directory, maxBytes: .max)
        let manifest = PushManifest(name: "huge", version: "v1", size: 1 << 50, sha256: String(repeating: "0", count: 64), chunkSize: 1 << 20)
        await #expect(throws: PushError.self) { try await inbox.begin(manifest, signature: []) }
        #expect((try FileManager.default.contentsOfDirectory(atPath: directory)).isEmpty)
    }

    @Test("an abandoned push is removed once it is older than the expiry; a recent one stays")
    func stalePushesPruned() async throws {
        let directory = Self.temporary()
        let inbox = Self.inbox(directory)
        let manifest = PushManifest(name: "old", version: "v1", size: 4096, sha256: String(repeating: "0", count: 64), chunkSize: 1024)
        _ = try await inbox.begin(manifest, signature: [])
        #expect(await inbox.pruneStale(olderThan: 3600).isEmpty)
        #expect(await inbox.pruneStale(olderThan: 3600, now: Date().addingTimeInterval(7200)) == ["old@v1"])
        #expect((try FileManager.default.contentsOfDirectory(atPath: directory)).isEmpty)
        await #expect(throws: PushError.self) { try await inbox.put(name: "old", version: "v1", index: 0, data: Array(repeating: 0, count: 1024)) }
    }
}
