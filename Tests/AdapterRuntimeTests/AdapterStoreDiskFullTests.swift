import AdapterFormats
import AdapterRuntime
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A small tmpfs mounted for one test, where the machine lets the tests mount one (root in a VM or container that
/// allows it; CI's machines do).
struct SmallDisk {
    let path: String

    /// Mounts `bytes` of tmpfs, or nil when mounting is not allowed here.
    static func mount(bytes: Int) -> SmallDisk? {
        let path = NSTemporaryDirectory() + "adapterd-small-disk-" + UUID().uuidString.prefix(8)
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        guard Glibc.mount("tmpfs", path, "tmpfs", 0, "size=\(bytes)") == 0 else { return nil }
        return SmallDisk(path: path)
    }

    func unmount() {
        _ = umount(path)
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Whether this machine lets the tests mount a tmpfs.
    static let available: Bool = {
        guard let disk = mount(bytes: 64 << 10) else { return false }
        disk.unmount()
        return true
    }()
}

@Suite("AdapterStore on a full disk")
struct AdapterStoreDiskFullTests {
    @Test("a full disk is reported as no space on the store's disk, not as an unreadable source, and leaves nothing behind",
          .enabled(if: SmallDisk.available, "mounting a tmpfs is not allowed on this machine"))
    func fullDiskNamesTheStore() throws {
        // Room for the registry database, not for the adapter's 600 KB.
        let disk = try #require(SmallDisk.mount(bytes: 384 << 10))
        defer { disk.unmount() }
        let store = try AdapterStore(dataDirectory: disk.path)
        let source = AdapterStoreTests.adapter("severity")
        do {
            _ = try store.importFiles(from: source)
            Issue.record("the copy fitted on a 384 KB disk")
        } catch {
            #expect(error == .noSpace(directory: disk.path + "/adapters"), "\(error)")
            #expect(error.description.contains(disk.path) && !error.description.contains(source), "\(error)")
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: disk.path + "/adapters")
        #expect(left.isEmpty, "a failed copy left \(left)")
        // Once there is room, the same import works: nothing half-written is in the way.
        let roomy = try #require(SmallDisk.mount(bytes: 4 << 20))
        defer { roomy.unmount() }
        let other = try AdapterStore(dataDirectory: roomy.path)
        #expect(try other.importFiles(from: source).count == 64)
    }
}
