import AdapterdAPI
import AdapterdClient
import AdapterEngine
import AdapterRuntime
import Foundation
import MQTTRPC

/// The inference method: asks the resolver for a lease on the adapter the request should run, runs it on the
/// engine thread, releases the lease (which feeds the rollout guard), and records the outcome in the metrics.
public struct InferenceHandlers: Sendable {
    let services: WorkerServices

    /// Handlers over `services`.
    public init(services: WorkerServices) {
        self.services = services
    }

    /// The inference method (served on the `…/infer/…` topics, not the control table).
    public var method: RPCMethod { .unary(.infer, infer) }

    /// Runs one inference request and records its outcome under the adapter version it resolved to.
    public func infer(_ request: Adapterd_V1_InferRequest, _ context: RPCContext) async throws -> Adapterd_V1_InferReply {
        var resolved: AdapterRegistry.Entry?
        var labelCheck = LabelCheckOutcome.unchecked
        do {
            let reply = try await run(request, context, resolved: &resolved, labelCheck: &labelCheck)
            await services.metrics.recordInference(
                name: reply.adapter, version: reply.version, status: .ok, latency: ContinuousClock.now - context.receivedAt,
                label: reply.label.isEmpty ? nil : reply.label, confidence: Self.topProbability(reply.logits), labelCheck: labelCheck)
            return reply
        } catch {
            let status = RPCError(mapping: error).status
            // Names that never resolved are not adapters: one bucket for them keeps label cardinality bounded
            // whatever clients send.
            let name = resolved?.name ?? (request.adapter.isEmpty && request.adapters.isEmpty ? "" : WorkerMetrics.unresolved)
            await services.metrics.recordInference(name: name, version: resolved?.version ?? "", status: status, latency: ContinuousClock.now - context.receivedAt)
            throw error
        }
    }

    /// Runs the request; `labelCheck` says which pass answered it.
    private func run(
        _ request: Adapterd_V1_InferRequest, _ context: RPCContext, resolved: inout AdapterRegistry.Entry?, labelCheck: inout LabelCheckOutcome
    ) async throws -> Adapterd_V1_InferReply {
        guard request.hasText else { throw HandlerError.missingField("text") }
        let encoded: Encoding
        if request.textPair.isEmpty {
            encoded = services.engine.encode(request.text)
        } else {
            do {
                encoded = try services.engine.model.tokenizer.encode(request.text, pair: request.textPair)
            } catch {
                throw HandlerError.invalidField(field: "text_pair", value: "\(request.textPair.count) characters", problem: error.description)
            }
        }
        // A model with one token type reads every id as type 0.
        let typeIds = services.engine.model.config.typeVocabSize > 1 && encoded.typeIds.contains(where: { $0 != 0 }) ? encoded.typeIds : nil
        let lease: AdapterLease
        if request.adapters.isEmpty {
            lease = try await services.resolver.lease(
                AdapterResolver.Request(
                    adapter: request.adapter, version: request.version, session: request.session, topic: context.topic,
                    sensorPath: context.sensorPath, metadata: request.metadata, ids: encoded.ids),
                resolved: &resolved)
        } else {
            guard request.adapter.isEmpty, request.version.isEmpty else {
                throw HandlerError.invalidField(field: "adapters", value: "\(request.adapters.count) parts", problem: "give 'adapter' or 'adapters', not both")
            }
            lease = try await services.resolver.leaseBlend(request.adapters.map { ($0.name, $0.weight) })
        }
        var reply = Adapterd_V1_InferReply()
        reply.routedBy = lease.routing.routedBy
        if let router = lease.routing.router {
            reply.router = router.name
            reply.routerVersion = router.version
            reply.routerChoice = router.choice
            reply.routerConfidence = router.confidence
            await services.metrics.recordRouting(
                router: router.name, adapter: router.fallback != nil ? (lease.entry?.name ?? "") : router.choice, fallback: router.fallback,
                duration: router.duration)
        }
        var refusal: InferenceError?
        let result: CheckedOutput?
        do {
            result = try await services.executor.run(EncodedInput(ids: encoded.ids, adapter: lease.adapter, typeIds: typeIds), deadline: context.deadline)
        } catch {
            (result, refusal) = (nil, error)
        }
        do {
            // A refused row is the client's error, not the version's: it does not count against a canary.
            if let rollback = try await lease.release(ok: result != nil || refusal != nil, since: context.receivedAt) {
                // The registry reported the rollback as it made it.
                services.logger.warning("canary rolled back", metadata: ["name": "\(rollback.name)", "version": "\(rollback.canary)", "reason": "\(rollback.reason)"])
            }
        } catch {
            services.logger.error("cannot roll back canary", metadata: ["name": "\(lease.entry?.name ?? "")", "error": "\(error)"])
        }
        if let refusal { throw refusal }
        guard let checked = result else { throw HandlerError.expiredWaiting }
        let output = checked.output
        labelCheck = checked.outcome
        if let entry = lease.entry, !services.shadows.offer(name: entry.name, version: entry.version, ids: encoded.ids, typeIds: typeIds, output: output) {
            await services.metrics.recordShadowDropped(name: entry.name, version: entry.version)
        }
        reply.worker = services.configuration.workerID
        reply.tokens = Int32(encoded.ids.count)
        if let entry = lease.entry {
            reply.adapter = entry.name
            reply.version = entry.version
        } else if !lease.blend.isEmpty {
            // One metrics bucket for every blend: clients choose the weights, so per-blend labels would be unbounded.
            reply.adapter = "blend"
            reply.blend = lease.blend.map { part in
                var served = Adapterd_V1_BlendPart()
                (served.name, served.version, served.weight) = (part.entry.name, part.entry.version, part.weight)
                return served
            }
        }
        switch output {
        case .classification(let logits, _, let label):
            reply.logits = logits
            switch lease.adapter?.head?.problemType ?? .singleLabel {
            case .singleLabel: reply.label = label
            case .multiLabel:
                reply.label = label
                reply.labels = lease.adapter?.head?.labelsOn(logits) ?? []
            case .regression: reply.value = logits[0]
            }
        case .tokenClassification(let logits, let labels):
            reply.tokenPredictions = zip(logits, labels).map { values, label in
                var token = Adapterd_V1_TokenPrediction()
                (token.logits, token.label) = (values, label)
                return token
            }
            if request.textPair.isEmpty, let head = lease.adapter?.head,
               let entities = services.engine.model.tokenizer.entities(text: request.text, ids: encoded.ids, logits: logits, labels: head.labels) {
                reply.entities = entities.map { entity in
                    var found = Adapterd_V1_Entity()
                    (found.label, found.score, found.word) = (entity.label, entity.score, entity.word)
                    (found.start, found.end) = (Int32(clamping: entity.start), Int32(clamping: entity.end))
                    return found
                }
            }
        case .embedding(let values):
            reply.embedding = values
        }
        reply.latencyMs = Float((ContinuousClock.now - context.receivedAt).inMilliseconds)
        return reply
    }

    /// The softmax probability of the highest logit (nil without logits).
    static func topProbability(_ logits: [Float]) -> Double? {
        guard let top = logits.max() else { return nil }
        let total = logits.reduce(0.0) { $0 + exp(Double($1 - top)) }
        return 1 / total
    }
}
