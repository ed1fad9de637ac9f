import AdapterdAPI
import AdapterdClient
import AdapterdCore
import Foundation
import MQTTRPC

/// Shadow comparison's cost on Infer latency: blocks of 100 sequential requests with `intent` v2 active and 10% of its
/// requests compared with v1 (the same files), alternating with blocks where v1 is active without comparison.
struct ShadowCost {
    var unshadowed: [Double] = []
    var shadowed: [Double] = []
    var compared = 0

    static func measure(
        client: AdapterdClient, worker: Worker, adapterDirectory: String, infer: (Int) async throws -> [Double]
    ) async throws -> ShadowCost {
        var load = Adapterd_V1_LoadAdapterRequest()
        (load.name, load.version, load.path) = ("intent", "v2", adapterDirectory)
        _ = try await client.control(.loadAdapter, load, timeout: .seconds(30))
        func activate(_ version: String, shadow: Float) async throws {
            var request = Adapterd_V1_ActivateAdapterRequest()
            (request.name, request.version, request.shadow) = ("intent", version, shadow)
            let reply = try await client.control(.activateAdapter, request, timeout: .seconds(10))
            guard RPCStatus(reply.status) == .ok else { throw RPCError(RPCStatus(reply.status), reply.error) }
        }
        var cost = ShadowCost()
        for block in 0..<10 {
            if block % 2 == 0 {
                try await activate("v1", shadow: 0)
                cost.unshadowed += try await infer(100)
            } else {
                try await activate("v2", shadow: 0.1)
                cost.shadowed += try await infer(100)
            }
        }
        cost.compared = await worker.currentMetrics().adapters.first { $0.name == "intent" && $0.version == "v2" }?.shadow?.compared ?? 0
        return cost
    }

    /// One line for the report.
    var summary: String {
        func figure(_ values: [Double], _ p: Double) -> String { String(format: "%.2f", percentile(values, p)) }
        let ratio = String(format: "%.2f", percentile(shadowed, 0.99) / percentile(unshadowed, 0.99))
        return "shadow comparison: 500 sequential requests without it p50 \(figure(unshadowed, 0.5)) ms, p99 \(figure(unshadowed, 0.99)) ms; "
            + "500 with 10% compared (\(compared) compared) p50 \(figure(shadowed, 0.5)) ms, p99 \(figure(shadowed, 0.99)) ms (p99 ratio \(ratio))"
    }
}
