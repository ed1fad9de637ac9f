import AdapterEngine
import Foundation
import InputRouting

/// The one place a request's adapter is decided: request → route (→ input router → session) → default, then the
/// version (session pin → rollout → active), then the weights from the cache. The request gets an
/// `AdapterLease` with what it needs to run and to report; releasing the lease returns the weights to the cache
/// and feeds the rollout guard, which may end a rollout.
public struct AdapterResolver: Sendable {
    /// What the request says about itself.
    public struct Request: Sendable {
        public var adapter: String
        public var version: String
        public var session: String
        public var topic: String
        /// Topic levels after `infer` (sensor type, sensor id …).
        public var sensorPath: [String]
        public var metadata: [String: String]
        /// The text's token ids (for input routers).
        public var ids: [Int32]

        public init(adapter: String, version: String, session: String, topic: String, sensorPath: [String], metadata: [String: String], ids: [Int32]) {
            self.adapter = adapter
            self.version = version
            self.session = session
            self.topic = topic
            self.sensorPath = sensorPath
            self.metadata = metadata
            self.ids = ids
        }
    }

    /// How the adapter was chosen.
    public struct Routing: Sendable, Equatable {
        /// `request`, `session`, `rollout`, `route`, `router`, `default`, or empty (no adapter: embeddings).
        public var routedBy = ""
        /// The input router consulted, if any, and what it said (also when its confidence was too low); `fallback`
        /// is why the route's own adapter served instead of the choice (nil: the choice served).
        public var router: (name: String, version: String, choice: String, confidence: Float, fallback: RouterFallback?, duration: Duration)?

        public static func == (lhs: Routing, rhs: Routing) -> Bool {
            lhs.routedBy == rhs.routedBy && lhs.router?.name == rhs.router?.name && lhs.router?.version == rhs.router?.version
                && lhs.router?.choice == rhs.router?.choice && lhs.router?.confidence == rhs.router?.confidence
        }
    }

    /// Why a lease could not be had, besides the registry's own errors.
    public enum Failure: Error, CustomStringConvertible, Sendable, Equatable {
        case explicitAdapterForbidden
        case versionNeedsAdapter
        case weightsUnavailable(name: String, version: String, reason: String)
        case invalidBlend(String)

        public var description: String {
            switch self {
            case .explicitAdapterForbidden: return "this worker routes requests itself; remove 'adapter' from the request"
            case .versionNeedsAdapter: return "field 'version' needs 'adapter'"
            case let .weightsUnavailable(name, version, reason): return "adapter '\(name)' \(version) could not be loaded: \(reason)"
            case let .invalidBlend(problem): return "adapters: \(problem)"
            }
        }
    }

    public let registry: AdapterRegistry
    public let rolloutGuard: RolloutGuard
    /// Whether a request may name its adapter.
    public let allowExplicitAdapter: Bool
    /// Adapter for requests no route matches; nil gives embeddings.
    public let defaultAdapter: String?
    /// How long a session keeps its version and its router's decision.
    public let affinityTTL: Duration
    /// Pooled base-model features for input routers (the worker batches deeper stages on its engine thread).
    public let features: InputRouter.FeatureSource
    /// Reports what the resolver noticed and carried on past (a stale route, a router that failed).
    public let warn: @Sendable (String, [String: String]) -> Void
    /// Blends requests named, built once each.
    public let blends = BlendCache()

    public init(
        registry: AdapterRegistry, rolloutGuard: RolloutGuard, allowExplicitAdapter: Bool, defaultAdapter: String?, affinityTTL: Duration,
        features: @escaping InputRouter.FeatureSource, warn: @escaping @Sendable (String, [String: String]) -> Void = { _, _ in }
    ) {
        self.registry = registry
        self.rolloutGuard = rolloutGuard
        self.allowExplicitAdapter = allowExplicitAdapter
        self.defaultAdapter = defaultAdapter
        self.affinityTTL = affinityTTL
        self.features = features
        self.warn = warn
    }

    /// A lease on the adapter `request` should run (none: the base model's embedding). Throws `RegistryError` or
    /// `Failure`; `resolved` holds the version once one was chosen (for error metrics), even if a later step fails.
    public func lease(_ request: Request, resolved: inout AdapterRegistry.Entry?) async throws -> AdapterLease {
        var routing = Routing()
        var entry: AdapterRegistry.Entry?
        var resolution = AdapterRegistry.Resolution.active
        let stickyKey = request.sensorPath.joined(separator: "/")
        if !request.adapter.isEmpty {
            guard allowExplicitAdapter else { throw Failure.explicitAdapterForbidden }
            routing.routedBy = "request"
            if request.version.isEmpty {
                (entry, resolution) = try await registry.resolveReporting(name: request.adapter, session: request.session, stickyKey: stickyKey, ttl: affinityTTL)
            } else {
                entry = try await registry.resolve(name: request.adapter, version: request.version)
            }
        } else if !request.version.isEmpty {
            throw Failure.versionNeedsAdapter
        } else {
            var name: String?
            let matched = await registry.routeTable.select(topic: request.topic, context: request.sensorPath, metadata: request.metadata)
            if let route = matched, !route.blend.isEmpty {
                let parts = route.blendParts
                var missing: String?
                for part in parts where await !registry.isLoaded(part.name) { missing = missing ?? part.name }
                if let missing {
                    // A part was unloaded after the route was set: skip the route, say so, serve on.
                    warn("a part of the route's blend is not loaded; the route is skipped", ["route": route.name, "adapter": missing])
                    (name, routing.routedBy) = defaultAdapter.map { ($0, "default") } ?? (nil, "")
                } else {
                    return try await blendLease(parts, routedBy: "route")
                }
            } else if let route = matched {
                (name, routing.routedBy) = (route.adapter.isEmpty ? nil : route.adapter, "route")
                if !route.router.isEmpty, let chosen = await ask(route, request: request, routing: &routing) { name = chosen }
                if name == route.adapter, let adapter = name, await !registry.isLoaded(adapter) {
                    // The route's adapter was unloaded after the route was set: skip the route, say so, serve on.
                    warn("route's adapter is not loaded; the route is skipped", ["route": route.name, "adapter": adapter])
                    (name, routing.routedBy) = defaultAdapter.map { ($0, "default") } ?? (nil, "")
                }
            } else if let fallback = defaultAdapter {
                (name, routing.routedBy) = (fallback, "default")
            }
            if let name {
                (entry, resolution) = try await registry.resolveReporting(name: name, session: request.session, stickyKey: stickyKey, ttl: affinityTTL)
            } else {
                routing.routedBy = ""
            }
        }
        if let entry, entry.kind != .adapter { throw RegistryError.notKind(name: entry.name, kind: .adapter) }
        if resolution == .rollout, routing.routedBy != "router", routing.routedBy != "session" { routing.routedBy = "rollout" }
        resolved = entry
        var weights: LoRAAdapter?
        if let entry {
            do {
                weights = try await registry.cache.acquire(entry.key)
            } catch {
                throw Failure.weightsUnavailable(name: entry.name, version: entry.version, reason: "\(error)")
            }
        }
        return AdapterLease(entry: entry, adapter: weights, routing: routing, resolver: self)
    }

    /// Most parts a blend may have.
    public static let maxBlendParts = 8

    /// Why `parts` cannot be a blend (a request's or a route's), or nil: 2 to `maxBlendParts` distinct names, finite
    /// weights.
    public static func blendProblem(_ parts: [(name: String, weight: Float)]) -> String? {
        guard (2...maxBlendParts).contains(parts.count), Set(parts.map(\.name)).count == parts.count else {
            return "a blend names 2 to \(maxBlendParts) distinct adapters, not \(parts.map(\.name))"
        }
        if let part = parts.first(where: { !$0.weight.isFinite }) { return "the weight of '\(part.name)' is \(part.weight)" }
        return nil
    }

    /// A lease on the weighted blend of `parts` (2 to 8 distinct adapter names, finite weights): the active version
    /// of each, held in the cache while the request runs, blended as `LoRAAdapter.blend` does. A blend is explicit:
    /// no route, session pin or rollout applies to it, and its outcome does not count for any version's canary.
    public func leaseBlend(_ parts: [(name: String, weight: Float)]) async throws -> AdapterLease {
        guard allowExplicitAdapter else { throw Failure.explicitAdapterForbidden }
        return try await blendLease(parts, routedBy: "request")
    }

    /// The lease on a blend a request or a route names.
    private func blendLease(_ parts: [(name: String, weight: Float)], routedBy: String) async throws -> AdapterLease {
        if let problem = Self.blendProblem(parts) { throw Failure.invalidBlend(problem) }
        var entries: [AdapterRegistry.Entry] = []
        for part in parts {
            let entry = try await registry.resolve(name: part.name, version: "")
            guard entry.kind == .adapter else { throw RegistryError.notKind(name: entry.name, kind: .adapter) }
            entries.append(entry)
        }
        var held: [LoRAAdapter] = []
        do {
            for entry in entries { held.append(try await registry.cache.acquire(entry.key)) }
        } catch {
            for entry in entries.prefix(held.count) { await registry.cache.release(entry.key) }
            let entry = entries[held.count]
            throw Failure.weightsUnavailable(name: entry.name, version: entry.version, reason: "\(error)")
        }
        let key = zip(entries, parts).map { "\($0.name)@\($0.version)×\($1.weight.bitPattern)" }.joined(separator: "+")
        let blended: LoRAAdapter
        if let cached = await blends.blend(for: key) {
            blended = cached
        } else {
            do {
                let built = try LoRAAdapter.blend(zip(held, parts).map { ($0, $1.weight) }, name: "blend")
                blended = await blends.insert(built, for: key)
            } catch {
                for entry in entries { await registry.cache.release(entry.key) }
                throw error
            }
        }
        var routing = Routing()
        routing.routedBy = routedBy
        return AdapterLease(entry: nil, adapter: blended, routing: routing, resolver: self, blend: zip(entries, parts).map { ($0, $1.weight) })
    }

    /// The route's input router's choice, unless the session already has one; nil to fall back to the route's
    /// adapter (confidence below the route's minimum, or a router that is gone or failed).
    private func ask(_ route: RouteRecord, request: Request, routing: inout Routing) async -> String? {
        if !request.session.isEmpty, let remembered = await registry.sessionChoice(session: request.session, route: route.name) {
            routing.routedBy = "session"
            return remembered
        }
        let loaded: (entry: AdapterRegistry.Entry, router: InputRouter)
        do {
            loaded = try await registry.router(named: route.router)
        } catch {
            warn("route's router is not loaded; the route's adapter serves", ["route": route.name, "router": route.router, "error": "\(error)"])
            return nil
        }
        let started = ContinuousClock.now
        let decision: RoutingDecision
        do {
            decision = try await loaded.router.route([request.ids], features: features)[0]
        } catch {
            warn("routing failed; the route's adapter serves", ["router": route.router, "error": "\(error)"])
            return nil
        }
        var fallback: RouterFallback?
        if Double(decision.confidence) < route.minConfidence {
            fallback = .lowConfidence
        } else if let kind = await registry.kind(of: decision.adapter) {
            if kind != .adapter { fallback = .notAnAdapter }
        } else {
            fallback = .notLoaded
        }
        routing.router = (loaded.entry.name, loaded.entry.version, decision.adapter, decision.confidence, fallback, ContinuousClock.now - started)
        if let fallback, fallback != .lowConfidence {
            // The router names something this worker cannot serve (unloaded since, or a router): the route's adapter
            // serves, as for a low confidence, and the choice is not remembered for the session.
            warn("router chose what is not a loaded adapter; the route's adapter serves", ["route": route.name, "router": route.router, "choice": decision.adapter, "reason": fallback.rawValue])
        }
        guard fallback == nil else { return nil }
        routing.routedBy = "router"
        if !request.session.isEmpty {
            await registry.rememberChoice(decision.adapter, session: request.session, route: route.name, ttl: affinityTTL)
        }
        return decision.adapter
    }
}

/// Why a route's own adapter served instead of its input router's choice.
public enum RouterFallback: String, Sendable {
    /// The router's confidence was below the route's minimum.
    case lowConfidence = "low_confidence"
    /// The router chose a name no version of which is loaded.
    case notLoaded = "not_loaded"
    /// The router chose an input router (itself, say), not an adapter.
    case notAnAdapter = "not_an_adapter"
}

/// What a request runs with: the adapter version and its weights (nil: the base model), and how they were
/// chosen. `release` must be called once the request is done.
public struct AdapterLease: Sendable {
    public let entry: AdapterRegistry.Entry?
    public let adapter: LoRAAdapter?
    public let routing: AdapterResolver.Routing
    let resolver: AdapterResolver
    /// For a blend: each part's version and weight (`entry` is then nil and `adapter` the blend).
    public var blend: [(entry: AdapterRegistry.Entry, weight: Float)] = []

    /// A canary the guard rolled back because of this outcome.
    public struct Rollback: Sendable, Equatable {
        public let name: String
        public let canary: String
        public let reason: String
    }

    /// Returns the weights to the cache and records the outcome with the rollout guard; a verdict against a canary
    /// ends its rollout, and is returned so the caller can announce it.
    public func release(ok: Bool, since: ContinuousClock.Instant) async throws -> Rollback? {
        for part in blend { await resolver.registry.cache.release(part.entry.key) }
        guard let entry else { return nil }
        let registry = resolver.registry
        await registry.cache.release(entry.key)
        guard let rollout = await registry.rollouts[entry.name] else { return nil }
        await resolver.rolloutGuard.record(entry.key, ok: ok, latencyMs: (ContinuousClock.now - since).inMilliseconds)
        guard let active = try? await registry.resolve(name: entry.name, version: ""),
              let verdict = await resolver.rolloutGuard.verdict(rollout, stable: active.version) else { return nil }
        try await registry.abortRollout(name: entry.name, canary: verdict.canary, reason: verdict.reason)
        await resolver.rolloutGuard.reset(name: entry.name)
        return Rollback(name: entry.name, canary: verdict.canary, reason: verdict.reason)
    }
}
