import AdapterdAPI
import AdapterFormats
import AdapterRuntime
import MQTTRPC

/// The over-the-air push method: begin (or resume), chunk, commit (verify, then stage like LoadAdapter), abort.
public struct PushHandlers: Sendable {
    let services: WorkerServices

    /// Handlers over `services`.
    public init(services: WorkerServices) {
        self.services = services
    }

    /// The methods, for the server's table.
    public var methods: [RPCMethod] { [.unary(.pushAdapter, push)] }

    /// One step of a push.
    public func push(_ request: Adapterd_V1_PushAdapterRequest, _ context: RPCContext) async throws -> Adapterd_V1_PushAdapterReply {
        for (field, value) in [("name", request.name), ("version", request.version)] {
            if let problem = AdapterName.problem(with: value) { throw HandlerError.invalidField(field: field, value: value, problem: problem) }
        }
        let pushes = services.pushes
        var reply = Adapterd_V1_PushAdapterReply()
        do {
            switch request.step {
            case .begin(let begin):
                // A version the worker could not register is refused before its bytes travel.
                try await services.registry.checkRoom(name: request.name, version: request.version)
                let manifest = PushManifest(
                    name: request.name, version: request.version, size: begin.size, sha256: begin.sha256,
                    chunkSize: Int(begin.chunkSize), baseFingerprint: begin.baseFingerprint,
                    pieces: begin.pieces.isEmpty ? nil : begin.pieces.map {
                        BundlePiece(name: $0.name, offset: $0.offset, length: $0.length, sha256: $0.sha256)
                    })
                let progress = try await pushes.begin(manifest, signature: Array(begin.signature))
                Self.fill(&reply, progress, missing: begin.missingAsRanges ? .ranges : .list)
                services.logger.info("push begun", metadata: [
                    "name": "\(request.name)", "version": "\(request.version)", "bytes": "\(begin.size)", "transfer": "\(progress.transferSize)",
                    "missing": "\(progress.missing.count)/\(progress.chunkCount)", "key": "\(progress.keyID)"])
            case .chunk(let chunk):
                let progress = try await pushes.put(name: request.name, version: request.version, index: Int(chunk.index), data: Array(chunk.data))
                Self.fill(&reply, progress, missing: nil)
            case .commit(let commit):
                try await self.commit(request, commit, context, into: &reply)
            case .abort:
                await pushes.discard(name: request.name, version: request.version)
            case nil:
                throw HandlerError.missingPushStep
            }
        } catch let error as PushError {
            if case .commit = request.step, error.discardsPush {
                services.publishEvent(.refused, name: request.name, version: request.version, context: context, reason: error.description)
            }
            throw error
        }
        return reply
    }

    /// Verifies a complete push, stages it like LoadAdapter and, when asked, activates it.
    private func commit(
        _ request: Adapterd_V1_PushAdapterRequest, _ commit: Adapterd_V1_PushCommit, _ context: RPCContext,
        into reply: inout Adapterd_V1_PushAdapterReply
    ) async throws {
        let pushes = services.pushes
        let registry = services.registry
        let verified = try await pushes.commit(name: request.name, version: request.version)
        let signer = verified.keyID.isEmpty ? "unsigned" : "signed by key \(verified.keyID)"
        let source = "push, \(signer)"
        let entry: AdapterRegistry.Entry
        do {
            // Staging copies the files into the store. The push's own copy stays until the push has done all it
            // asked: a worker killed before activating answers the commit sent again from it, without a resend.
            entry = try await registry.load(
                name: request.name, version: request.version, path: verified.directory, actor: context.actor,
                source: source, declaredBase: verified.manifest.baseFingerprint)
        } catch {
            // The registry reported a refusal; the push's own files go.
            await pushes.discard(name: request.name, version: request.version)
            throw error
        }
        CrashPoint.reached(.pushStaged)
        var staged = entry
        if commit.activate, entry.record.state != .active {
            let reason = commit.reason.isEmpty ? "activated on push" : commit.reason
            staged = try await registry.activate(name: entry.name, version: entry.version, actor: context.actor, reason: reason)
        }
        await pushes.discard(name: request.name, version: request.version)
        services.logger.info("push committed", metadata: ["name": "\(entry.name)", "version": "\(entry.version)", "state": "\(staged.record.state.rawValue)", "source": "\(source)"])
        reply.adapter = Adapterd_V1_AdapterInfo(staged)
        reply.keyID = verified.keyID
        reply.bytesReceived = verified.manifest.size
        reply.chunksTotal = Int32(clamping: verified.manifest.chunkCount)
    }

    /// How a reply lists the missing chunks.
    enum MissingChunks {
        case list
        case ranges
    }

    private static func fill(_ reply: inout Adapterd_V1_PushAdapterReply, _ progress: PushInbox.Progress, missing: MissingChunks?) {
        reply.chunksTotal = Int32(clamping: progress.chunkCount)
        reply.bytesReceived = progress.bytesReceived
        reply.keyID = progress.keyID
        if progress.delta {
            reply.delta = true
            reply.missingPieces = progress.missingPieces.map { Int32(clamping: $0) }
            reply.transferSize = progress.transferSize
        }
        switch missing {
        case .list: reply.missing = progress.missing.map { Int32(clamping: $0) }
        case .ranges: reply.missingRanges = ranges(of: progress.missing)
        case nil: break
        }
    }

    /// Ascending chunk indices as runs of consecutive ones.
    public static func ranges(of indices: [Int]) -> [Adapterd_V1_ChunkRange] {
        var ranges: [Adapterd_V1_ChunkRange] = []
        for index in indices {
            if let last = ranges.last, Int(last.first + last.count) == index {
                ranges[ranges.count - 1].count += 1
            } else {
                var range = Adapterd_V1_ChunkRange()
                range.first = Int32(index)
                range.count = 1
                ranges.append(range)
            }
        }
        return ranges
    }
}
