import AdapterdAPI
import AdapterdClient
import AdapterdCore
import FederatedLearning
import Foundation
import InputRouting
import MQTTRPC

/// Serving while the worker trains its part of a federated round: blocks of 50 sequential requests alone, alternating
/// with blocks while a FederatedRound (the routing set's 120 examples stored as Feedback, local epochs enough to
/// outlast the block) trains; each round is stopped when its block ends.
struct FederatedServingCost {
    var alone: [Double] = []
    var training: [Double] = []

    static func measure(
        client: AdapterdClient, worker: Worker, examples: [RoutingExample], infer: (Int) async throws -> [Double]
    ) async throws -> FederatedServingCost {
        for example in examples {
            var feedback = Adapterd_V1_FeedbackRequest()
            (feedback.name, feedback.text, feedback.label) = ("federated", example.text, example.adapter)
            _ = try await client.control(.feedback, feedback)
        }
        var plan = RoundPlan(labels: Array(Set(examples.map(\.adapter))).sorted())
        plan.localEpochs = 1000
        let planJSON = String(decoding: try JSONEncoder().encode(plan), as: UTF8.self)
        var cost = FederatedServingCost()
        for block in 0..<12 {
            if block % 2 == 0 {
                cost.alone += try await infer(50)
                continue
            }
            var request = Adapterd_V1_FederatedRoundRequest()
            (request.name, request.run, request.round) = ("federated", "bench", Int32(block))
            var offer = Adapterd_V1_FederatedOffer()
            offer.plan = planJSON
            offer.minExamples = 1
            request.offer = offer
            let offered = try await client.control(.federatedRound, request)
            precondition(RPCStatus(offered.status) == .ok, "FederatedRound offer refused: \(offered.error)")
            request.train = Adapterd_V1_FederatedTrain()
            let started = try await client.control(.federatedRound, request)
            precondition(RPCStatus(started.status) == .ok, "FederatedRound train refused: \(started.error)")
            cost.training += try await infer(50)
            await worker.services.federated.shutdown()
            await worker.services.training.waitUntilIdle()
        }
        return cost
    }

    /// One line for the report.
    var summary: String {
        func figure(_ values: [Double], _ p: Double) -> String { String(format: "%.2f", percentile(values, p)) }
        let ratio = String(format: "%.2f", percentile(training, 0.99) / percentile(alone, 0.99))
        return "300 sequential requests (alternating blocks of 50): p50 \(figure(alone, 0.5)) ms, p99 \(figure(alone, 0.99)) ms alone; "
            + "p50 \(figure(training, 0.5)) ms, p99 \(figure(training, 0.99)) ms while the worker trained a federated round (p99 ratio \(ratio))"
    }
}
