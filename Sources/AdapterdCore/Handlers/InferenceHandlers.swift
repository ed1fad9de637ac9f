import AdapterdAPI
import AdapterdClient
import AdapterEngine
import AdapterRuntime
import MQTTRPC

/// The inference method: resolves the adapter a request should run (request, route or default; session
/// affinity and rollouts through the registry), runs it on the engine thread, and records the outcome in the
/// metrics and the rollout guard.
public struct InferenceHandlers: Sendable {
    let services: WorkerServices

    /// Handlers over `services`.
    public init(services: WorkerServices) {
        self.services = services
    }

    /// The inference method (served on the `…/infer/…` topics, not the control table).
    public var method: RPCMethod { .unary("Infer", infer) }

    /// Runs one inference request and records its outcome under the adapter version it resolved to.
    public func infer(_ request: Adapterd_V1_InferRequest, _ context: RPCContext) async throws -> Adapterd_V1_InferReply {
        var resolved: AdapterRegistry.Entry?
        do {
            let reply = try await run(request, context, resolved: &resolved)
            await services.metrics.recordInference(name: reply.adapter, version: reply.version, status: .ok, latency: ContinuousClock.now - context.receivedAt)
            return reply
        } catch {
            let status = RPCError(mapping: error).status
            // Names that never resolved are not adapters: one bucket for them keeps label cardinality bounded
            // whatever clients send.
            let name = resolved?.name ?? (request.adapter.isEmpty ? "" : WorkerMetrics.unresolved)
            await services.metrics.recordInference(name: name, version: resolved?.version ?? "", status: status, latency: ContinuousClock.now - context.receivedAt)
            throw error
        }
    }

    private func run(_ request: Adapterd_V1_InferRequest, _ context: RPCContext, resolved: inout AdapterRegistry.Entry?) async throws -> Adapterd_V1_InferReply {
        let configuration = services.configuration
        let registry = services.registry
        guard request.hasText else { throw HandlerError.missingField("text") }
        let stickyKey = context.sensorPath.joined(separator: "/")
        var entry: AdapterRegistry.Entry?
        if !request.adapter.isEmpty {
            guard configuration.allowExplicitAdapter else { throw HandlerError.explicitAdapterForbidden }
            entry = request.version.isEmpty
                ? try await registry.resolve(name: request.adapter, session: request.session, stickyKey: stickyKey, ttl: configuration.affinityTTL)
                : try await registry.resolve(name: request.adapter, version: request.version)
        } else if !request.version.isEmpty {
            throw HandlerError.fieldNeeds(field: "version", needs: "adapter")
        } else if let name = await registry.routeTable.select(topic: context.topic, context: context.sensorPath, metadata: request.metadata)?.adapter
                    ?? configuration.defaultAdapter {
            entry = try await registry.resolve(name: name, session: request.session, stickyKey: stickyKey, ttl: configuration.affinityTTL)
        }
        resolved = entry
        let encoded = services.engine.encode(request.text)
        var adapter: LoRAAdapter?
        if let entry {
            do {
                adapter = try await registry.cache.acquire(entry.key)
            } catch {
                throw HandlerError.adapterUnavailable(name: entry.name, version: entry.version, reason: "\(error)")
            }
        }
        let result = await services.executor.run(EncodedInput(ids: encoded.ids, adapter: adapter), deadline: context.deadline)
        if let entry {
            await registry.cache.release(entry.key)
            await guardRollout(entry, ok: result != nil, since: context.receivedAt)
        }
        guard let output = result else { throw HandlerError.expiredWaiting }
        var reply = Adapterd_V1_InferReply()
        reply.worker = configuration.workerID
        reply.tokens = Int32(encoded.ids.count)
        if let entry {
            reply.adapter = entry.name
            reply.version = entry.version
        }
        switch output {
        case .classification(let logits, _, let label):
            reply.label = label
            reply.logits = logits
        case .embedding(let values):
            reply.embedding = values
        }
        reply.latencyMs = Float((ContinuousClock.now - context.receivedAt).inMilliseconds)
        return reply
    }

    /// Feeds the rollout guard and ends a rollout whose canary went bad.
    private func guardRollout(_ entry: AdapterRegistry.Entry, ok: Bool, since: ContinuousClock.Instant) async {
        let registry = services.registry
        let rolloutGuard = services.rolloutGuard
        guard let rollout = await registry.rollouts[entry.name] else { return }
        await rolloutGuard.record(entry.key, ok: ok, latencyMs: (ContinuousClock.now - since).inMilliseconds)
        guard let active = try? await registry.resolve(name: entry.name, version: ""),
              let verdict = await rolloutGuard.verdict(rollout, stable: active.version) else { return }
        do {
            try await registry.abortRollout(name: entry.name, canary: verdict.canary, reason: verdict.reason)
            await rolloutGuard.reset(name: entry.name)
            services.logger.warning("canary rolled back", metadata: ["name": "\(entry.name)", "version": "\(verdict.canary)", "reason": "\(verdict.reason)"])
            services.events(AdapterEvent(event: "rolled back", name: entry.name, version: verdict.canary, actor: "guard", reason: verdict.reason))
        } catch {
            services.logger.error("cannot roll back canary", metadata: ["name": "\(entry.name)", "error": "\(error)"])
        }
    }
}
