import AdapterdAPI
import AdapterFormats
import FederatedLearning
import Foundation

/// The worker's side of federated training: one method whose steps offer a round, carry the global adapter, start
/// the local training and collect the update.
public struct FederatedHandlers: Sendable {
    let services: WorkerServices

    /// Handlers over `services`.
    public init(services: WorkerServices) {
        self.services = services
    }

    /// The methods, for the server's table.
    public var methods: [RPCMethod] {
        [.unary(.federatedRound, round)]
    }

    /// Runs one step of a round.
    public func round(_ request: Adapterd_V1_FederatedRoundRequest, _ context: RPCContext) async throws -> Adapterd_V1_FederatedRoundReply {
        guard services.configuration.trainingEnabled else { throw HandlerError.trainingDisabled }
        if let problem = AdapterName.problem(with: request.name) { throw HandlerError.invalidField(field: "name", value: request.name, problem: problem) }
        guard !request.run.isEmpty, request.run.count <= 64, request.run.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) else {
            throw HandlerError.invalidField(field: "run", value: String(request.run.prefix(80)), problem: "1–64 letters, digits or '-'")
        }
        guard request.round >= 1 else { throw HandlerError.invalidField(field: "round", value: "\(request.round)", problem: "rounds count from 1") }
        let key = FederatedRounds.Key(name: request.name, run: request.run, round: Int(request.round))
        let rounds = services.federated
        let status: FederatedRounds.Status
        switch request.step {
        case .offer(let offer):
            let plan: RoundPlan
            do {
                plan = try JSONDecoder().decode(RoundPlan.self, from: Data(offer.plan.utf8))
            } catch {
                throw HandlerError.invalidField(field: "plan", value: String(offer.plan.prefix(80)), problem: "not a round plan: \(error)")
            }
            status = try await rounds.offer(key, FederatedRounds.Offer(
                size: Int(offer.size), sha256: offer.sha256, chunkSize: Int(offer.chunkSize), baseFingerprint: offer.baseFingerprint,
                plan: plan, minExamples: Int(offer.minExamples)))
        case .globalChunk(let chunk):
            status = try await rounds.chunk(key, index: Int(chunk.index), data: Array(chunk.data))
        case .train:
            status = try await rounds.train(key)
        case .collect(let collect):
            status = try await rounds.collect(key, index: Int(collect.index), chunkSize: Int(collect.chunkSize))
        case nil:
            throw HandlerError.missingFederatedStep
        }
        return Self.reply(status, index: request.collect.index)
    }

    static func reply(_ status: FederatedRounds.Status, index: Int32) -> Adapterd_V1_FederatedRoundReply {
        var reply = Adapterd_V1_FederatedRoundReply()
        reply.state = status.state
        reply.storedExamples = Int32(clamping: status.storedExamples)
        reply.chunksTotal = Int32(clamping: status.chunks)
        reply.missing = PushHandlers.ranges(of: status.missing)
        reply.step = Int32(clamping: status.step)
        reply.totalSteps = Int32(clamping: status.totalSteps)
        if !status.failure.isEmpty { reply.error = status.failure }
        if let trained = status.outcome {
            reply.examples = Int32(clamping: trained.examples)
            reply.heldOut = Int32(clamping: trained.heldOut)
            reply.localAccuracy = trained.accuracy ?? -1
            reply.skipped = Int32(clamping: trained.skipped)
            reply.updateSize = Int64(trained.update.count)
            reply.updateSha256 = trained.sha256
        }
        if let chunk = status.chunk {
            reply.index = index
            reply.data = Data(chunk)
        }
        return reply
    }
}
