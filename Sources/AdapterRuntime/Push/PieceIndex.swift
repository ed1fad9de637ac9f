import AdapterFormats
import Foundation

/// Which bundle pieces the worker already holds, from any adapter in its content-addressed store: a delta push's
/// begin asks it, and its commit reads the held pieces back. A class with a lock: the push inbox and the store
/// share it; indexing an adapter (reading and hashing its bundle) happens once per stored adapter.
public final class PieceIndex: @unchecked Sendable {
    private struct Location {
        let directory: String
        let offset: Int
        let length: Int
    }

    private let adaptersDirectory: String
    private let lock = NSLock()
    private var locations: [String: Location] = [:]
    private var indexed: Set<String> = []

    /// An index over the adapters stored under `adaptersDirectory` (`{data}/adapters`).
    public init(adaptersDirectory: String) {
        self.adaptersDirectory = adaptersDirectory
    }

    /// Indexes stored adapters not seen before and forgets removed ones.
    public func refresh() {
        let present = Set(((try? FileManager.default.contentsOfDirectory(atPath: adaptersDirectory)) ?? []).filter { !$0.hasPrefix(".") })
        let (new, gone) = lock.withLock { (present.subtracting(indexed), indexed.subtracting(present)) }
        var found: [(String, Location)] = []
        for name in new {
            let directory = adaptersDirectory + "/" + name
            guard let bundle = try? AdapterBundle.encode(directory: directory),
                  let pieces = try? bundle.withUnsafeBytes({ bytes throws(PushError) in try BundlePiece.pieces(of: bytes) }) else { continue }
            for piece in pieces { found.append((piece.sha256, Location(directory: directory, offset: Int(piece.offset), length: Int(piece.length)))) }
        }
        lock.withLock {
            if !gone.isEmpty {
                let removed = Set(gone.map { adaptersDirectory + "/" + $0 })
                locations = locations.filter { !removed.contains($0.value.directory) }
                indexed.subtract(gone)
            }
            for (digest, location) in found where locations[digest] == nil { locations[digest] = location }
            indexed.formUnion(new)
        }
    }

    /// Whether a stored adapter holds bytes with `piece`'s digest and length.
    public func holds(_ piece: BundlePiece) -> Bool {
        lock.withLock { locations[piece.sha256].map { Int64($0.length) == piece.length } ?? false }
    }

    /// The bytes of `piece` from a stored adapter, checked against its digest; nil when they are gone. `bundles`
    /// keeps the stored bundles read so far, for the next pieces of one assembly.
    public func bytes(of piece: BundlePiece, bundles: inout [String: [UInt8]]) -> [UInt8]? {
        guard let location = lock.withLock({ locations[piece.sha256] }) else { return nil }
        if bundles[location.directory] == nil { bundles[location.directory] = try? AdapterBundle.encode(directory: location.directory) }
        guard let bundle = bundles[location.directory], location.offset + location.length <= bundle.count else { return nil }
        let bytes = Array(bundle[location.offset..<(location.offset + location.length)])
        guard AdapterDigest.sha256(of: bytes) == piece.sha256 else { return nil }
        return bytes
    }
}
