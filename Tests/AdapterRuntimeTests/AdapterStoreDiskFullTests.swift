import AdapterFormats
import AdapterRuntime
import Foundation
import Testing

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
