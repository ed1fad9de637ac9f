import AdapterdAPI
import AdapterRuntime
import Foundation
import MQTTRPC

/// Adapter lifecycle methods: load, unload, list, describe, activate, roll back, history, pin.
public struct AdapterHandlers: Sendable {
    let services: WorkerServices

    /// Handlers over `services`.
    public init(services: WorkerServices) {
        self.services = services
    }

    /// The methods, for the server's table.
    public var methods: [RPCMethod] {
        [
            .unary(.loadAdapter, load), .unary(.unloadAdapter, unload), .unary(.listAdapters, list),
            .unary(.activateAdapter, activate), .unary(.rollback, rollback), .unary(.history, history),
            .unary(.pinAdapter) { try await pin($0, $1, pinned: true) },
            .unary(.unpinAdapter) { try await pin($0, $1, pinned: false) },
            .unary(.getAdapter, get),
        ]
    }

    /// Stages an adapter directory as a new version (the first version of a name becomes active).
    public func load(_ request: Adapterd_V1_LoadAdapterRequest, _ context: RPCContext) async throws -> Adapterd_V1_LoadAdapterReply {
        let roots = [services.configuration.dataDirectory] + services.configuration.adapterRoots
        guard AdapterRoots.contains(request.path, roots: roots) else { throw HandlerError.outsideAdapterRoots(roots: roots) }
        let entry = try await services.registry.load(name: request.name, version: request.version, path: request.path, actor: context.actor)
        services.logger.info("loaded adapter", metadata: ["name": "\(entry.name)", "version": "\(entry.version)", "state": "\(entry.record.state.rawValue)"])
        var reply = Adapterd_V1_LoadAdapterReply()
        reply.adapter = Adapterd_V1_AdapterInfo(entry)
        return reply
    }

    /// Removes one version, or every version of a name.
    public func unload(_ request: Adapterd_V1_UnloadAdapterRequest, _ context: RPCContext) async throws -> Adapterd_V1_UnloadAdapterReply {
        try await services.registry.unload(name: request.name, version: request.version, actor: context.actor)
        return Adapterd_V1_UnloadAdapterReply()
    }

    /// Every loaded version.
    public func list(_ request: Adapterd_V1_ListAdaptersRequest, _ context: RPCContext) async throws -> Adapterd_V1_ListAdaptersReply {
        var reply = Adapterd_V1_ListAdaptersReply()
        reply.adapters = await services.registry.list().map(Adapterd_V1_AdapterInfo.init)
        return reply
    }

    /// Makes a staged version the active one.
    public func activate(_ request: Adapterd_V1_ActivateAdapterRequest, _ context: RPCContext) async throws -> Adapterd_V1_ActivateAdapterReply {
        guard request.shadow.isFinite, (0...1).contains(request.shadow) else {
            throw HandlerError.invalidField(field: "shadow", value: "\(request.shadow)", problem: "a fraction of requests from 0 to 1")
        }
        let replaced = await services.registry.list().first { $0.name == request.name && $0.record.state == .active }?.version
        let entry = try await services.registry.activate(name: request.name, version: request.version, actor: context.actor, reason: request.reason)
        services.shadows.plan(name: entry.name, version: entry.version, against: replaced, fraction: Double(request.shadow))
        services.logger.info("activated adapter", metadata: [
            "name": "\(entry.name)", "version": "\(entry.version)", "shadow": "\(request.shadow > 0 ? "\(request.shadow) against \(replaced ?? "none")" : "no")",
        ])
        var reply = Adapterd_V1_ActivateAdapterReply()
        reply.adapter = Adapterd_V1_AdapterInfo(entry)
        return reply
    }

    /// Returns a name to its previously active version.
    public func rollback(_ request: Adapterd_V1_RollbackRequest, _ context: RPCContext) async throws -> Adapterd_V1_RollbackReply {
        let entry = try await services.registry.rollback(name: request.name, actor: context.actor, reason: request.reason)
        services.logger.notice("rolled back adapter", metadata: ["name": "\(entry.name)", "version": "\(entry.version)"])
        var reply = Adapterd_V1_RollbackReply()
        reply.adapter = Adapterd_V1_AdapterInfo(entry)
        return reply
    }

    /// A name's audit trail.
    public func history(_ request: Adapterd_V1_HistoryRequest, _ context: RPCContext) async throws -> Adapterd_V1_HistoryReply {
        var reply = Adapterd_V1_HistoryReply()
        reply.events = try await services.registry.history(name: request.name).map { record in
            var event = Adapterd_V1_HistoryEvent()
            event.version = record.version
            event.action = record.action.rawValue
            event.actor = record.actor
            event.reason = record.reason
            event.at = record.at.formatted(.iso8601)
            return event
        }
        return reply
    }

    /// Keeps a name's weights resident (or lets the cache evict them again).
    func pin(_ request: Adapterd_V1_PinAdapterRequest, _ context: RPCContext, pinned: Bool) async throws -> Adapterd_V1_PinAdapterReply {
        _ = try await services.registry.resolve(name: request.name, version: "")
        if pinned {
            await services.registry.cache.pin(request.name)
        } else {
            await services.registry.cache.unpin(request.name)
        }
        return Adapterd_V1_PinAdapterReply()
    }

    /// A name's versions, active version, traffic split and pin.
    public func get(_ request: Adapterd_V1_GetAdapterRequest, _ context: RPCContext) async throws -> Adapterd_V1_GetAdapterReply {
        let registry = services.registry
        let active = try await registry.resolve(name: request.name, version: "")
        var reply = Adapterd_V1_GetAdapterReply()
        reply.versions = await registry.list().filter { $0.name == request.name }.map(Adapterd_V1_AdapterInfo.init)
        reply.active = active.version
        reply.splits = Dictionary(uniqueKeysWithValues: (await registry.rollouts[request.name]?.splits ?? []).map { ($0.version, Int32($0.weight)) })
        reply.pinned = await registry.cache.isPinned(request.name)
        return reply
    }
}
