import AdapterdAPI
import AdapterFormats
import AdapterRuntime
import MQTTRPC

extension Worker {
    /// One step of an over-the-air push: begin (or resume), chunk, commit (verify, then stage like LoadAdapter),
    /// abort.
    func push(_ request: Adapterd_V1_PushAdapterRequest, message: MQTTMessage) async throws -> Adapterd_V1_PushAdapterReply {
        for (field, value) in [("name", request.name), ("version", request.version)] {
            if let problem = AdapterName.problem(with: value) { throw RPCError(.invalidArgument, "\(field) '\(value)' is invalid: \(problem)") }
        }
        var reply = Adapterd_V1_PushAdapterReply()
        do {
            switch request.step {
            case .begin(let begin):
                let manifest = PushManifest(
                    name: request.name, version: request.version, size: begin.size, sha256: begin.sha256,
                    chunkSize: Int(begin.chunkSize), baseFingerprint: begin.baseFingerprint)
                let progress = try await pushes.begin(manifest, signature: Array(begin.signature))
                Self.fill(&reply, progress, missing: true)
                logger.info("push begun", metadata: [
                    "name": "\(request.name)", "version": "\(request.version)", "bytes": "\(begin.size)",
                    "missing": "\(progress.missing.count)/\(progress.chunkCount)", "key": "\(progress.keyID)"])
            case .chunk(let chunk):
                let progress = try await pushes.put(name: request.name, version: request.version, index: Int(chunk.index), data: Array(chunk.data))
                Self.fill(&reply, progress, missing: false)
            case .commit(let commit):
                let verified = try await pushes.commit(name: request.name, version: request.version)
                let signer = verified.keyID.isEmpty ? "unsigned" : "signed by key \(verified.keyID)"
                let source = "push, \(signer)"
                let entry: AdapterRegistry.Entry
                do {
                    // Staging copies the files into the store; the push's own copy goes either way.
                    entry = try await registry.load(
                        name: request.name, version: request.version, path: verified.directory, actor: Self.actor(message),
                        source: source, declaredBase: verified.manifest.baseFingerprint)
                    await pushes.discard(name: request.name, version: request.version)
                } catch {
                    await pushes.discard(name: request.name, version: request.version)
                    if error.status == .failedPrecondition {
                        publishEvent("refused", name: request.name, version: request.version, message: message, reason: error.message)
                    }
                    throw error
                }
                publishEvent("loaded", name: entry.name, version: entry.version, message: message, reason: source)
                var staged = entry
                if commit.activate, entry.record.state != .active {
                    let reason = commit.reason.isEmpty ? "activated on push" : commit.reason
                    staged = try await registry.activate(name: entry.name, version: entry.version, actor: Self.actor(message), reason: reason)
                    publishEvent("activated", name: entry.name, version: entry.version, message: message, reason: reason)
                }
                logger.info("push committed", metadata: ["name": "\(entry.name)", "version": "\(entry.version)", "state": "\(staged.record.state.rawValue)", "source": "\(source)"])
                reply.adapter = Self.info(staged)
                reply.keyID = verified.keyID
                reply.bytesReceived = verified.manifest.size
                reply.chunksTotal = Int32(verified.manifest.chunkCount)
            case .abort:
                await pushes.discard(name: request.name, version: request.version)
            case nil:
                throw RPCError(.invalidArgument, "a push request needs one of 'begin', 'chunk', 'commit' or 'abort'")
            }
        } catch let error as PushError {
            if case .commit = request.step, error.discardsPush {
                publishEvent("refused", name: request.name, version: request.version, message: message, reason: error.description)
            }
            throw RPCError(error.status, error.description)
        }
        return reply
    }

    private static func fill(_ reply: inout Adapterd_V1_PushAdapterReply, _ progress: PushInbox.Progress, missing: Bool) {
        reply.chunksTotal = Int32(progress.chunkCount)
        reply.bytesReceived = progress.bytesReceived
        reply.keyID = progress.keyID
        if missing { reply.missing = progress.missing.map(Int32.init) }
    }
}

extension PushError {
    /// The RPC status a push failure is reported with.
    var status: RPCStatus {
        switch self {
        case .invalidManifest, .chunkLength, .malformedBundle: return .invalidArgument
        case .tooLarge, .insufficientSpace: return .resourceExhausted
        case .unsigned: return .unauthenticated
        case .untrustedSignature: return .permissionDenied
        case .notStarted: return .notFound
        case .chunkOutOfRange: return .outOfRange
        case .incomplete: return .failedPrecondition
        case .sizeMismatch, .digestMismatch: return .dataLoss
        case .io: return .internal
        }
    }

    /// Whether the push was thrown away (the sender must start over).
    var discardsPush: Bool {
        switch self {
        case .sizeMismatch, .digestMismatch, .malformedBundle, .unsigned, .untrustedSignature: return true
        default: return false
        }
    }
}
