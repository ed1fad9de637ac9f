import AdapterdAPI
import AdapterdClient
import AdapterEngine
import AdapterRuntime
import InputRouting
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
        let encoded = services.engine.encode(request.text)
        var reply = Adapterd_V1_InferReply()
        var entry: AdapterRegistry.Entry?
        var resolution = AdapterRegistry.Resolution.active
        if !request.adapter.isEmpty {
            guard configuration.allowExplicitAdapter else { throw HandlerError.explicitAdapterForbidden }
            reply.routedBy = "request"
            if request.version.isEmpty {
                (entry, resolution) = try await registry.resolveReporting(name: request.adapter, session: request.session, stickyKey: stickyKey, ttl: configuration.affinityTTL)
            } else {
                entry = try await registry.resolve(name: request.adapter, version: request.version)
            }
        } else if !request.version.isEmpty {
            throw HandlerError.fieldNeeds(field: "version", needs: "adapter")
        } else {
            var name: String?
            let matched = await registry.routeTable.select(topic: context.topic, context: context.sensorPath, metadata: request.metadata)
            if let route = matched {
                (name, reply.routedBy) = (route.adapter.isEmpty ? nil : route.adapter, "route")
                if !route.router.isEmpty, let routed = await routeThroughRouter(route, request: request, ids: encoded.ids, reply: &reply) {
                    name = routed
                }
            } else if let fallback = configuration.defaultAdapter {
                (name, reply.routedBy) = (fallback, "default")
            }
            if let route = matched, name == route.adapter, await !registry.isLoaded(route.adapter) {
                // The route's adapter was unloaded after the route was set: skip the route, say so, serve on.
                services.logger.warning("route's adapter is not loaded; the route is skipped", metadata: ["route": "\(route.name)", "adapter": "\(route.adapter)"])
                (name, reply.routedBy) = configuration.defaultAdapter.map { ($0, "default") } ?? (nil, "")
            }
            if let name {
                (entry, resolution) = try await registry.resolveReporting(name: name, session: request.session, stickyKey: stickyKey, ttl: configuration.affinityTTL)
            } else {
                reply.routedBy = ""
            }
        }
        if let entry, entry.kind != .adapter { throw RegistryError.notKind(name: entry.name, kind: .adapter) }
        if resolution == .rollout, reply.routedBy != "router", reply.routedBy != "session" { reply.routedBy = "rollout" }
        resolved = entry
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

    /// Asks the route's input router for the adapter, unless the session already has its decision. Returns the
    /// adapter when the router (or the session's earlier decision) chose it, nil to fall back to the route's
    /// adapter: confidence below the route's minimum, or a router that is no longer loaded (logged, not fatal).
    private func routeThroughRouter(_ route: RouteRecord, request: Adapterd_V1_InferRequest, ids: [Int32], reply: inout Adapterd_V1_InferReply) async -> String? {
        let registry = services.registry
        if !request.session.isEmpty, let remembered = await registry.sessionChoice(session: request.session, route: route.name) {
            reply.routedBy = "session"
            return remembered
        }
        let loaded: (entry: AdapterRegistry.Entry, router: InputRouter)
        do {
            loaded = try await registry.router(named: route.router)
        } catch {
            services.logger.warning("route's router is not loaded; the route's adapter serves", metadata: ["route": "\(route.name)", "router": "\(route.router)", "error": "\(error)"])
            return nil
        }
        let started = ContinuousClock.now
        let engine = services.engine
        let executor = services.executor
        let decision: RoutingDecision
        do {
            // Stages over the embeddings alone are a table lookup: they run here. Deeper stages join the engine
            // thread's next batch, with every other request waiting for routing.
            decision = try await loaded.router.route([ids]) { rows, layers in
                if layers == 0 { return try engine.features(encoded: rows, layers: 0) }
                guard let features = await executor.features(rows, layers: layers) else { throw RegistryError.engineStopping }
                return features
            }[0]
        } catch {
            services.logger.error("routing failed; the route's adapter serves", metadata: ["router": "\(route.router)", "error": "\(error)"])
            return nil
        }
        reply.router = loaded.entry.name
        reply.routerVersion = loaded.entry.version
        reply.routerChoice = decision.adapter
        reply.routerConfidence = decision.confidence
        let confident = Double(decision.confidence) >= route.minConfidence
        await services.metrics.recordRouting(
            router: loaded.entry.name, adapter: confident ? decision.adapter : route.adapter, fallback: !confident,
            duration: ContinuousClock.now - started)
        guard confident else { return nil }
        reply.routedBy = "router"
        if !request.session.isEmpty {
            await registry.rememberChoice(decision.adapter, session: request.session, route: route.name, ttl: services.configuration.affinityTTL)
        }
        return decision.adapter
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
