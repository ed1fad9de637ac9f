import Foundation
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
