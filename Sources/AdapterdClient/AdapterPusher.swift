import AdapterFormats
import AdapterdAPI
import Foundation
import MQTTRPC

/// Sends an adapter to a worker over MQTT as a push: begin (which says what the worker already has), the missing
/// chunks with several in flight, then commit. An interrupted push sent again resumes where it stopped. A delta
/// push lists the bundle's pieces (files, headers, tensors): only those the worker holds in no stored adapter
/// travel; a worker that predates delta pushes gets the whole bundle.
public struct AdapterPusher: Sendable {
    /// How a push went.
    public struct Outcome: Sendable {
        /// The commit's reply: the staged version.
        public let reply: Adapterd_V1_PushAdapterReply
        /// Chunks sent by this call, and those the worker already held from an earlier attempt.
        public let chunksSent: Int
        public let chunksResumed: Int
        /// Payload bytes this call sent in chunks.
        public let bytesSent: Int64
        /// Whether the worker took a delta push, and the pieces it asked for out of all of them.
        public let delta: Bool
        public let piecesSent: Int
        public let piecesTotal: Int
    }

    public let client: AdapterdClient
    public let chunkSize: Int
    /// Chunks in flight at once.
    public let window: Int
    /// Per-step reply timeout; a chunk that times out is sent again (up to `retries` times).
    public let timeout: Duration
    public let retries: Int

    public init(client: AdapterdClient, chunkSize: Int = 256 << 10, window: Int = 8, timeout: Duration = .seconds(10), retries: Int = 3) {
        self.client = client
        self.chunkSize = chunkSize
        self.window = max(1, window)
        self.timeout = timeout
        self.retries = retries
    }

    /// The manifest for pushing `payload` as (name, version).
    public func manifest(payload: [UInt8], name: String, version: String, baseFingerprint: String = "") -> PushManifest {
        PushManifest(
            name: name, version: version, size: Int64(payload.count), sha256: AdapterDigest.sha256(of: payload),
            chunkSize: chunkSize, baseFingerprint: baseFingerprint)
    }

    /// Pushes `payload` under `manifest` (signed when `signature` is not empty), then commits it. `progress` gets
    /// the bytes the worker holds and the total after every chunk. Throws `RPCError` when a step is refused.
    /// With `delta` (the default) only the pieces the worker lacks travel.
    public func push(
        _ payload: [UInt8], manifest: PushManifest, signature: [UInt8] = [], activate: Bool = false, reason: String = "",
        delta: Bool = true, progress: @escaping @Sendable (Int64, Int64) -> Void = { _, _ in }
    ) async throws -> Outcome {
        var begin = Adapterd_V1_PushBegin()
        begin.size = manifest.size
        begin.sha256 = manifest.sha256
        begin.chunkSize = Int32(manifest.chunkSize)
        begin.baseFingerprint = manifest.baseFingerprint
        begin.signature = Data(signature)
        begin.missingAsRanges = true
        // A bundle that does not split into pieces goes whole.
        let pieces = delta ? (try? payload.withUnsafeBytes { bytes throws(PushError) in try BundlePiece.pieces(of: bytes) }) ?? [] : []
        begin.pieces = pieces.map {
            var piece = Adapterd_V1_BundlePiece()
            piece.name = $0.name
            piece.offset = $0.offset
            piece.length = $0.length
            piece.sha256 = $0.sha256
            return piece
        }
        let started = try await step(manifest, .begin(begin))
        // What the chunks carry: the pieces the worker asked for, in order, or the whole payload.
        let transfer: [UInt8] = started.delta
            ? started.missingPieces.flatMap { index in
                let piece = pieces[Int(index)]
                return payload[Int(piece.offset)..<Int(piece.offset + piece.length)]
            }
            : payload
        let total = Int64(transfer.count)
        let sent = Progress(bytes: 0)
        // A worker from before ranges answers with the list.
        let missing = started.missingRanges.isEmpty
            ? started.missing.map(Int.init)
            : started.missingRanges.flatMap { Int($0.first)..<Int($0.first + $0.count) }
        let held = Progress(bytes: started.bytesReceived)
        progress(started.bytesReceived, total)
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = missing.makeIterator()
            func sendNext() -> Bool {
                guard let index = next.next() else { return false }
                group.addTask {
                    let start = index * manifest.chunkSize
                    var chunk = Adapterd_V1_PushChunk()
                    chunk.index = Int32(index)
                    chunk.data = Data(transfer[start..<(start + manifest.length(ofChunk: index, carrying: total))])
                    _ = try await self.step(manifest, .chunk(chunk))
                    _ = await sent.add(Int64(chunk.data.count))
                    progress(await held.add(Int64(chunk.data.count)), total)
                }
                return true
            }
            for _ in 0..<window where sendNext() {}
            while try await group.next() != nil { _ = sendNext() }
        }
        var commit = Adapterd_V1_PushCommit()
        commit.activate = activate
        commit.reason = reason
        let committed = try await step(manifest, .commit(commit), attempts: 1)
        return Outcome(
            reply: committed, chunksSent: missing.count, chunksResumed: manifest.chunkCount(carrying: total) - missing.count, bytesSent: await sent.bytes,
            delta: started.delta, piecesSent: started.missingPieces.count, piecesTotal: pieces.count)
    }

    /// Drops an unfinished push on the worker.
    public func abort(name: String, version: String) async throws {
        var request = Adapterd_V1_PushAdapterRequest()
        request.name = name
        request.version = version
        request.abort = Adapterd_V1_PushAbort()
        let reply = try await client.control(.pushAdapter, request, timeout: timeout)
        guard RPCStatus(reply.status) == .ok else { throw RPCError(RPCStatus(reply.status), reply.error) }
    }

    /// One request; a timed-out step is sent again (every step is idempotent except commit, sent once).
    private func step(_ manifest: PushManifest, _ step: Adapterd_V1_PushAdapterRequest.OneOf_Step, attempts: Int? = nil) async throws -> Adapterd_V1_PushAdapterReply {
        var request = Adapterd_V1_PushAdapterRequest()
        request.name = manifest.name
        request.version = manifest.version
        request.step = step
        var attempt = 0
        while true {
            attempt += 1
            do {
                let reply = try await client.control(.pushAdapter, request, timeout: timeout)
                guard RPCStatus(reply.status) == .ok else { throw RPCError(RPCStatus(reply.status), reply.error) }
                return reply
            } catch let error as MQTTError where attempt < (attempts ?? retries + 1) {
                _ = error
                continue
            }
        }
    }

    /// Bytes the worker holds, as chunks complete concurrently.
    private actor Progress {
        var bytes: Int64
        init(bytes: Int64) { self.bytes = bytes }
        func add(_ count: Int64) -> Int64 {
            bytes += count
            return bytes
        }
    }
}
