import AdapterFormats
import Crypto
import Foundation
import Glibc
#if canImport(Glibc)
#endif

/// Pushes in progress, kept on disk under `{data}/pushes/{name}@{version}/` so an interrupted push resumes (even
/// across a worker restart) from the chunks already stored: `push.json` (manifest and signature), `payload`
/// (chunks written at their offsets) and `chunks` (one byte per chunk, set once the chunk's bytes are written).
public actor PushInbox {
    /// Where a push stands.
    public struct Progress: Sendable, Equatable {
        public var chunkCount: Int
        /// Chunks not yet stored, lowest first.
        public var missing: [Int]
        public var bytesReceived: Int64
        /// Id of the trusted key that signed the manifest, or empty.
        public var keyID: String
        /// A delta push: the pieces that must travel (indices into the manifest's pieces) and their total bytes,
        /// which the chunks carry.
        public var delta: Bool = false
        public var missingPieces: [Int] = []
        public var transferSize: Int64 = 0
    }

    /// A verified push, unpacked and ready to be staged.
    public struct Verified: Sendable {
        public let manifest: PushManifest
        /// Directory holding the adapter's files.
        public let directory: String
        public let keyID: String
    }

    struct Record: Codable, Equatable {
        /// A delta push's layout, fixed at its first begin: the pieces that travel and their total bytes.
        struct Delta: Codable, Equatable {
            var missing: [Int]
            var size: Int64
        }

        var manifest: PushManifest
        var signature: Data
        var keyID: String
        var delta: Delta?

        /// Bytes the chunks carry: the missing pieces of a delta push, or the whole payload.
        var transferSize: Int64 { delta?.size ?? manifest.size }
        var chunkCount: Int { manifest.chunkCount(carrying: transferSize) }
        func length(ofChunk index: Int) -> Int { manifest.length(ofChunk: index, carrying: transferSize) }
    }

    public let directory: String
    private let maxBytes: Int64
    private let trusted: TrustedKeys
    private let requireSigned: Bool
    /// Free space a push must leave on the data directory's file system.
    private let reserveBytes: Int64
    /// Unfinished pushes untouched this long are removed when another push begins.
    private let staleAfter: TimeInterval
    /// The pieces stored adapters hold, for delta pushes (none: every piece travels).
    private let pieces: PieceIndex?
    private var received: [String: [Bool]] = [:]
    /// Manifests of pushes in progress, read from `push.json` once.
    private var records: [String: Record] = [:]

    /// An inbox under `directory`, accepting pushes up to `maxBytes`, signed by `trusted` keys (required when
    /// `requireSigned`); unfinished pushes untouched for `staleAfter` seconds are removed.
    public init(
        directory: String, maxBytes: Int64, trusted: TrustedKeys, requireSigned: Bool, reserveBytes: Int64 = 32 << 20,
        staleAfter: TimeInterval = 24 * 3600, pieces: PieceIndex? = nil
    ) {
        self.staleAfter = staleAfter
        self.pieces = pieces
        self.directory = directory
        self.maxBytes = maxBytes
        self.trusted = trusted
        self.requireSigned = requireSigned
        self.reserveBytes = reserveBytes
    }

    /// Starts a push, or resumes it when the same manifest was begun before. A different manifest for the same
    /// (name, version) replaces the unfinished push.
    public func begin(_ manifest: PushManifest, signature: [UInt8]) throws(PushError) -> Progress {
        try manifest.validate()
        guard manifest.size <= maxBytes else { throw .tooLarge(size: manifest.size, limit: maxBytes) }
        let keyID = try checkSignature(signature, manifest)
        // Abandoned pushes must not hold disk space for ever on a worker that runs for months.
        pruneStale(olderThan: staleAfter)
        let folder = folder(manifest.name, manifest.version)
        // The same manifest again resumes, with the layout its first begin fixed (pieces are a transport hint: a
        // push begun whole and resumed by a client that lists pieces carries on whole).
        if let existing = try? self.record(in: folder), existing.signature == Data(signature),
           existing.manifest.withoutPieces == manifest.withoutPieces {
            return try progress(existing, folder: folder)
        }
        var record = Record(manifest: manifest, signature: Data(signature), keyID: keyID)
        if let list = manifest.pieces {
            pieces?.refresh()
            let missing = list.indices.filter { !(pieces?.holds(list[$0]) ?? false) }
            record.delta = Record.Delta(missing: missing, size: missing.reduce(0) { $0 + list[$1].length })
        }
        discard(name: manifest.name, version: manifest.version)
        // The payload, its unpacked files and the store's copy all need room at once.
        let needed = 3 * manifest.size + reserveBytes
        try ensureDirectory(directory)
        let available = Self.freeBytes(directory)
        guard available >= needed else { throw .insufficientSpace(needed: needed, available: available, directory: directory) }
        try ensureDirectory(folder)
        try withFile(folder + "/payload") { fd in ftruncate(fd, off_t(record.transferSize)) }
        try withFile(folder + "/chunks") { fd in ftruncate(fd, off_t(record.chunkCount)) }
        let encoded: Data
        do {
            encoded = try JSONEncoder().encode(record)
            try encoded.write(to: URL(fileURLWithPath: folder + "/push.json"), options: .atomic)
        } catch {
            throw .writeFailure(error, path: folder + "/push.json")
        }
        received[folder] = Array(repeating: false, count: record.chunkCount)
        records[folder] = record
        return try progress(record, folder: folder)
    }

    /// Stores chunk `index`. A chunk sent again is written again (same place); chunks may come in any order.
    public func put(name: String, version: String, index: Int, data: [UInt8]) throws(PushError) -> Progress {
        let folder = folder(name, version)
        guard let record = try? record(in: folder) else { throw .notStarted(name: name, version: version) }
        let manifest = record.manifest
        guard index >= 0, index < record.chunkCount else { throw .chunkOutOfRange(index: index, count: record.chunkCount) }
        let expected = record.length(ofChunk: index)
        guard data.count == expected else { throw .chunkLength(index: index, got: data.count, expected: expected) }
        try withFile(folder + "/payload") { fd in
            data.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(index) * off_t(manifest.chunkSize)) == $0.count ? 0 : -1 }
        }
        // Marked only after its bytes are written: a crash in between costs a resend, never a hole.
        try withFile(folder + "/chunks") { fd in
            var one: UInt8 = 1
            return pwrite(fd, &one, 1, off_t(index)) == 1 ? 0 : -1
        }
        var flags = try chunkFlags(folder: folder, count: record.chunkCount)
        flags[index] = true
        received[folder] = flags
        CrashPoint.reached(.pushChunkStored)
        return try progress(record, folder: folder)
    }

    /// Where the push of (name, version) stands.
    public func progress(name: String, version: String) throws(PushError) -> Progress {
        let folder = folder(name, version)
        guard let record = try? record(in: folder) else { throw .notStarted(name: name, version: version) }
        return try progress(record, folder: folder)
    }

    /// Checks that every chunk arrived, the payload's size and SHA-256 match the manifest and its signature is
    /// (still) trusted, then unpacks it. A payload that fails a check is discarded; an incomplete one is kept.
    public func commit(name: String, version: String) throws(PushError) -> Verified {
        let folder = folder(name, version)
        guard let record = try? record(in: folder) else { throw .notStarted(name: name, version: version) }
        let manifest = record.manifest
        let flags = try chunkFlags(folder: folder, count: record.chunkCount)
        let missing = flags.lazy.filter { !$0 }.count
        guard missing == 0 else { throw .incomplete(missing: missing, count: record.chunkCount) }
        do throws(PushError) {
            let keyID = try checkSignature(Array(record.signature), manifest)
            let received: Data
            do {
                received = try Data(contentsOf: URL(fileURLWithPath: folder + "/payload"), options: .alwaysMapped)
            } catch {
                throw PushError.io(path: folder + "/payload", reason: "\(error)")
            }
            let payload = try assemble(record, from: received)
            guard Int64(payload.count) == manifest.size else { throw PushError.sizeMismatch(expected: manifest.size, actual: Int64(payload.count)) }
            let digest = AdapterDigest.hex(SHA256.hash(data: payload))
            guard digest == manifest.sha256 else { throw PushError.digestMismatch(expected: manifest.sha256, actual: digest) }
            let unpacked = folder + "/adapter"
            try? FileManager.default.removeItem(atPath: unpacked)
            try ensureDirectory(unpacked)
            var failure: PushError?
            payload.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
                do throws(PushError) { try AdapterBundle.unpack(bytes, into: unpacked) } catch { failure = error }
            }
            if let failure { throw failure }
            CrashPoint.reached(.pushVerified)
            return Verified(manifest: manifest, directory: unpacked, keyID: keyID)
        } catch {
            // A bad payload or signature is thrown away; a full disk or another local failure keeps the chunks, so
            // the commit can be sent again once it is fixed.
            if error.discardsPush { discard(name: name, version: version) }
            throw error
        }
    }

    /// Removes the push of (name, version) and everything it stored.
    public func discard(name: String, version: String) {
        let folder = folder(name, version)
        received[folder] = nil
        records[folder] = nil
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// Removes pushes not touched for `age`; returns their folder names.
    @discardableResult
    public func pruneStale(olderThan age: TimeInterval, now: Date = Date()) -> [String] {
        let manager = FileManager.default
        var removed: [String] = []
        for name in (try? manager.contentsOfDirectory(atPath: directory)) ?? [] {
            let folder = directory + "/" + name
            let touched = [folder + "/chunks", folder + "/push.json", folder].compactMap {
                (try? manager.attributesOfItem(atPath: $0))?[.modificationDate] as? Date
            }.max() ?? .distantPast
            if now.timeIntervalSince(touched) > age {
                received[folder] = nil
                records[folder] = nil
                try? manager.removeItem(atPath: folder)
                removed.append(name)
            }
        }
        return removed
    }

    // MARK: Internals

    private func folder(_ name: String, _ version: String) -> String {
        // Names and versions are validated before any begin, and only validated names reach the file system.
        directory + "/" + name + "@" + version
    }

    private func checkSignature(_ signature: [UInt8], _ manifest: PushManifest) throws(PushError) -> String {
        if signature.isEmpty {
            if requireSigned { throw .unsigned }
            return ""
        }
        return try trusted.verify(signature, for: manifest)
    }

    private func record(in folder: String) throws -> Record {
        if let record = records[folder] { return record }
        let record = try JSONDecoder().decode(Record.self, from: Data(contentsOf: URL(fileURLWithPath: folder + "/push.json")))
        records[folder] = record
        return record
    }

    private func chunkFlags(folder: String, count: Int) throws(PushError) -> [Bool] {
        if let flags = received[folder] { return flags }
        guard let bytes = FileManager.default.contents(atPath: folder + "/chunks") else {
            throw .io(path: folder + "/chunks", reason: "cannot read")
        }
        var flags = bytes.prefix(count).map { $0 != 0 }
        flags += Array(repeating: false, count: max(0, count - flags.count))
        received[folder] = flags
        return flags
    }

    private func progress(_ record: Record, folder: String) throws(PushError) -> Progress {
        let flags = try chunkFlags(folder: folder, count: record.chunkCount)
        var missing: [Int] = []
        var bytes: Int64 = 0
        for (index, done) in flags.enumerated() {
            if done { bytes += Int64(record.length(ofChunk: index)) } else { missing.append(index) }
        }
        return Progress(
            chunkCount: record.chunkCount, missing: missing, bytesReceived: bytes, keyID: record.keyID, delta: record.delta != nil,
            missingPieces: record.delta?.missing ?? [], transferSize: record.transferSize)
    }

    /// The payload of a push: what arrived, or for a delta push the pieces the worker holds with the ones that
    /// arrived between them, in order. Its size and digest are checked by the caller.
    private func assemble(_ record: Record, from received: Data) throws(PushError) -> Data {
        guard let delta = record.delta, let list = record.manifest.pieces else { return received }
        guard Int64(received.count) == delta.size else { throw .sizeMismatch(expected: delta.size, actual: Int64(received.count)) }
        let travelled = Set(delta.missing)
        var payload = Data(capacity: Int(record.manifest.size))
        var cursor = 0
        var bundles: [String: [UInt8]] = [:]
        for (index, piece) in list.enumerated() {
            if travelled.contains(index) {
                payload.append(received[cursor..<(cursor + Int(piece.length))])
                cursor += Int(piece.length)
            } else {
                guard let bytes = pieces?.bytes(of: piece, bundles: &bundles) else { throw .pieceGone(name: piece.name) }
                payload.append(contentsOf: bytes)
            }
        }
        return payload
    }

    private func ensureDirectory(_ path: String) throws(PushError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw .io(path: path, reason: error.localizedDescription)
        }
    }

    private func withFile(_ path: String, _ body: (Int32) -> Int32) throws(PushError) {
        let fd = open(path, O_RDWR | O_CREAT, 0o600)
        guard fd >= 0 else { throw .writeFailure(errno: errno, path: path) }
        defer { close(fd) }
        guard body(fd) == 0 else { throw .writeFailure(errno: errno, path: path) }
    }

    /// Bytes available to this process on the file system holding `path`.
    static func freeBytes(_ path: String) -> Int64 {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return 0 }
        return Int64(info.f_bavail) * Int64(info.f_frsize)
    }
}
