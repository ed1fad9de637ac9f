import AdapterFormats
import AdapterRuntime
import Foundation
import Testing

@Suite("PushInbox on a full disk")
struct PushInboxDiskFullTests {
    /// Fills the file system holding `directory` with one file; returns its path.
    static func fill(_ directory: String) -> String {
        let path = directory + "/filler-" + UUID().uuidString.prefix(8)
        let fd = open(path, O_WRONLY | O_CREAT, 0o600)
        defer { close(fd) }
        let block = [UInt8](repeating: 7, count: 16 << 10)
        while block.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 {}
        return path
    }

    @Test("a disk that fills during a push refuses the chunk as a full disk naming the push's directory, keeps what was stored, and the push completes once there is room",
          .enabled(if: SmallDisk.available, "mounting a tmpfs is not allowed on this machine"))
    func fullDiskMidPush() async throws {
        let disk = try #require(SmallDisk.mount(bytes: 4 << 20))
        defer { disk.unmount() }
        let payload = try AdapterBundle.encode(directory: AdapterStoreTests.adapter("severity"))
        let manifest = PushManifest(name: "alerts", version: "v2", size: Int64(payload.count), sha256: AdapterDigest.sha256(of: payload), chunkSize: 16 << 10)
        let inbox = PushInbox(directory: disk.path + "/pushes", maxBytes: 64 << 20, trusted: try TrustedKeys([]), requireSigned: false, reserveBytes: 0)
        let folder = disk.path + "/pushes/alerts@v2"
        func chunk(_ index: Int) -> [UInt8] {
            let start = index * manifest.chunkSize
            return Array(payload[start..<(start + manifest.length(ofChunk: index))])
        }
        _ = try await inbox.begin(manifest, signature: [])
        let half = manifest.chunkCount / 2
        for index in 0..<half { _ = try await inbox.put(name: "alerts", version: "v2", index: index, data: chunk(index)) }

        // Something else on the box takes the rest of the disk.
        var filler = Self.fill(disk.path)
        await #expect(throws: PushError.diskFull(directory: folder)) {
            _ = try await inbox.put(name: "alerts", version: "v2", index: half, data: chunk(half))
        }
        let held = try await inbox.progress(name: "alerts", version: "v2")
        #expect(held.missing == Array(half..<manifest.chunkCount), "the chunks stored before the disk filled are kept")

        try FileManager.default.removeItem(atPath: filler)
        for index in half..<manifest.chunkCount { _ = try await inbox.put(name: "alerts", version: "v2", index: index, data: chunk(index)) }

        // The disk fills again before the commit unpacks: the commit fails, the complete push stays.
        filler = Self.fill(disk.path)
        await #expect(throws: PushError.diskFull(directory: folder + "/adapter")) { _ = try await inbox.commit(name: "alerts", version: "v2") }
        #expect(try await inbox.progress(name: "alerts", version: "v2").missing.isEmpty)
        try FileManager.default.removeItem(atPath: filler)
        let verified = try await inbox.commit(name: "alerts", version: "v2")
        #expect(try AdapterDigest.sha256(ofAdapterAt: verified.directory) == manifest.sha256)
    }
}
