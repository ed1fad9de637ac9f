#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory mapping of a whole file, unmapped when the last reference goes away.
///
/// It is a class because it owns an OS resource; it is immutable after `init`, so sharing it across
/// tasks is safe.
public final class MappedFile: @unchecked Sendable {
    /// The path the mapping was made from (for error messages).
    public let path: String
    /// Start of the mapped bytes (nil for an empty file).
    public let bytes: UnsafeRawPointer?
    /// Number of mapped bytes.
    public let count: Int
    /// Whether the bytes are a copy in anonymous memory (dropping its pages would lose them).
    private let isAnonymous: Bool

    /// Maps `path` read-only.
    public init(path: String) throws(SafeTensorsError) {
        self.path = path
        isAnonymous = false
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .cannotOpen(file: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .cannotOpen(file: path, reason: String(cString: strerror(errno))) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw .cannotOpen(file: path, reason: "not a regular file") }
        count = Int(info.st_size)
        if count == 0 {
            bytes = nil
            return
        }
        let address = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let address, address != MAP_FAILED else {
            throw .cannotOpen(file: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        bytes = UnsafeRawPointer(address)
    }

    /// A private copy of `contents` in anonymous memory, read as a file named `name` (bytes that came over the
    /// network, validated by the same reader as files on disk).
    public init(copying contents: [UInt8], name: String) throws(SafeTensorsError) {
        path = name
        let count = contents.count
        self.count = count
        isAnonymous = true
        if count == 0 {
            bytes = nil
            return
        }
        let address = mmap(nil, count, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let address, address != MAP_FAILED else {
            throw .cannotOpen(file: name, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        contents.withUnsafeBytes { address.copyMemory(from: $0.baseAddress!, byteCount: count) }
        bytes = UnsafeRawPointer(address)
    }

    /// Drops this process's resident pages of `byteCount` bytes at `start` (whole pages inside the range only); the
    /// mapping stays valid and a later read faults them back in from the file. For data copied elsewhere once.
    public func releasePages(from start: UnsafeRawPointer, byteCount: Int) {
        guard !isAnonymous else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let first = (Int(bitPattern: start) + page - 1) / page * page
        let last = (Int(bitPattern: start) + byteCount) / page * page
        guard last > first else { return }
        madvise(UnsafeMutableRawPointer(bitPattern: first), last - first, Int32(MADV_DONTNEED))
    }

    deinit {
        if let bytes { munmap(UnsafeMutableRawPointer(mutating: bytes), count) }
    }
}
