import AdapterdAPI
import AdapterdClient
import AdapterdCore
import AdapterdTestSupport
import AdapterFormats
import FederatedLearning
import Foundation
import MQTTRPC
import Testing

/// FederatedRound called directly (no broker): what a worker refuses, and the global adapter's transfer.
@Suite("Federated round handler", .serialized)
struct FederatedRoundHandlerTests {
    static let plan = RoundPlan(labels: ["lights", "alarm"])

    static func request(round: Int32 = 1, _ step: Adapterd_V1_FederatedRoundRequest.OneOf_Step) -> Adapterd_V1_FederatedRoundRequest {
        var request = Adapterd_V1_FederatedRoundRequest()
        (request.name, request.run, request.round) = ("home", "run-1", round)
        request.step = step
        return request
    }

    static func offer(size: Int = 0, sha256: String = "", chunkSize: Int32 = 1024, fingerprint: String = "", minExamples: Int32 = 1, plan: String? = nil) -> Adapterd_V1_FederatedRoundRequest.OneOf_Step {
        var offer = Adapterd_V1_FederatedOffer()
        offer.size = Int64(size)
        offer.sha256 = sha256
        offer.chunkSize = chunkSize
        offer.baseFingerprint = fingerprint
        offer.minExamples = minExamples
        offer.plan = plan ?? String(decoding: try! JSONEncoder().encode(Self.plan), as: UTF8.self)
        return .offer(offer)
    }

    static func failure(_ body: () async throws -> Void) async -> RPCError? {
        do {
            try await body()
            return nil
        } catch {
            return RPCError(mapping: error)
        }
    }

    static func storeExamples(_ offline: OfflineServices, count: Int) async throws {
        for index in 0..<count {
            var feedback = Adapterd_V1_FeedbackRequest()
            (feedback.name, feedback.text, feedback.label) = ("home", "text number \(index)", index % 2 == 0 ? "lights" : "alarm")
            _ = try await TrainingHandlers(services: offline.services).feedback(feedback, RPCContext(actor: "tester"))
        }
    }

    @Test("offers are refused, with the reason, when training is off, over the memory budget, the base model differs, examples are too few, or the request is malformed")
    func refusals() async throws {
        let disabled = try OfflineServices { $0.trainingEnabled = false }
        let off = await Self.failure { _ = try await FederatedHandlers(services: disabled.services).round(Self.request(Self.offer()), RPCContext(actor: "t")) }
        #expect(off?.status == .failedPrecondition && off?.message.contains("training.enabled") == true, "\(String(describing: off))")

        let small = try OfflineServices { $0.trainingMemoryBudgetBytes = 1 << 20 }
        try await Self.storeExamples(small, count: 4)
        let budget = await Self.failure { _ = try await FederatedHandlers(services: small.services).round(Self.request(Self.offer()), RPCContext(actor: "t")) }
        #expect(budget?.status == .resourceExhausted && budget?.message.contains("budget") == true, "\(String(describing: budget))")

        let offline = try OfflineServices()
        let handlers = FederatedHandlers(services: offline.services)
        let few = await Self.failure { _ = try await handlers.round(Self.request(Self.offer(minExamples: 3)), RPCContext(actor: "t")) }
        #expect(few?.status == .failedPrecondition && few?.message.contains("holds 0 examples") == true, "\(String(describing: few))")
        try await Self.storeExamples(offline, count: 4)
        let other = await Self.failure { _ = try await handlers.round(Self.request(Self.offer(fingerprint: String(repeating: "ab", count: 32))), RPCContext(actor: "t")) }
        #expect(other?.status == .failedPrecondition && other?.message.contains("base model") == true, "\(String(describing: other))")
        let plan = await Self.failure { _ = try await handlers.round(Self.request(Self.offer(plan: "{not json")), RPCContext(actor: "t")) }
        #expect(plan?.status == .invalidArgument, "\(String(describing: plan))")
        let rank = await Self.failure {
            var wide = Self.plan
            wide.rank = 100_000
            _ = try await handlers.round(Self.request(Self.offer(plan: String(decoding: try JSONEncoder().encode(wide), as: UTF8.self))), RPCContext(actor: "t"))
        }
        #expect(rank?.status == .invalidArgument && rank?.message.contains("rank") == true, "\(String(describing: rank))")
        let huge = await Self.failure { _ = try await handlers.round(Self.request(Self.offer(size: 1 << 40, sha256: String(repeating: "0", count: 64))), RPCContext(actor: "t")) }
        #expect(huge?.status == .resourceExhausted, "\(String(describing: huge))")
        var badRun = Self.request(Self.offer())
        badRun.run = "../../etc"
        let run = await Self.failure { _ = try await handlers.round(badRun, RPCContext(actor: "t")) }
        #expect(run?.status == .invalidArgument, "\(String(describing: run))")
        let unknown = await Self.failure { _ = try await handlers.round(Self.request(round: 7, .train(Adapterd_V1_FederatedTrain())), RPCContext(actor: "t")) }
        #expect(unknown?.status == .notFound, "\(String(describing: unknown))")
        // The worker still offers and serves after all of that.
        let accepted = try await handlers.round(Self.request(Self.offer(fingerprint: offline.services.baseFingerprint)), RPCContext(actor: "t"))
        #expect(accepted.state == "ready" && accepted.storedExamples == 4)
    }

    @Test("the global adapter arrives in chunks; a damaged one is DATA_LOSS and dropped, sent again it is read, trained on, and the update handed out in chunks")
    func globalChunksAndUpdate() async throws {
        let offline = try OfflineServices()
        try await Self.storeExamples(offline, count: 6)
        let handlers = FederatedHandlers(services: offline.services)
        // A global adapter the way the controller makes it: a first round's tensors.
        let outcome = try LocalTraining(model: offline.services.engine.model, plan: Self.plan).run(
            round: 1, global: nil, examples: [.init(text: "lamp on", label: "lights"), .init(text: "smoke", label: "alarm")])
        let global = outcome.tensors.safetensors()
        let digest = AdapterDigest.sha256(of: global)
        let chunkSize = 64 << 10
        let chunks = (global.count + chunkSize - 1) / chunkSize
        var offered = try await handlers.round(Self.request(round: 2, Self.offer(size: global.count, sha256: digest, chunkSize: Int32(chunkSize))), RPCContext(actor: "t"))
        #expect(offered.state == "receiving" && offered.chunksTotal == Int32(chunks))
        func chunk(_ index: Int, damaged: Bool = false) -> Adapterd_V1_FederatedRoundRequest.OneOf_Step {
            var step = Adapterd_V1_PushChunk()
            step.index = Int32(index)
            var data = Array(global[(index * chunkSize)..<min(global.count, (index + 1) * chunkSize)])
            if damaged { data[0] ^= 0xFF }
            step.data = Data(data)
            return .globalChunk(step)
        }
        let early = await Self.failure { _ = try await handlers.round(Self.request(round: 2, .train(Adapterd_V1_FederatedTrain())), RPCContext(actor: "t")) }
        #expect(early?.status == .failedPrecondition, "\(String(describing: early))")
        for index in 0..<chunks { _ = try? await handlers.round(Self.request(round: 2, chunk(index, damaged: index == 0)), RPCContext(actor: "t")) }
        offered = try await handlers.round(Self.request(round: 2, Self.offer(size: global.count, sha256: digest, chunkSize: Int32(chunkSize))), RPCContext(actor: "t"))
        #expect(offered.state == "receiving" && offered.missing.reduce(0) { $0 + Int($1.count) } == chunks, "a damaged global adapter's chunks are dropped")
        for index in 0..<chunks { _ = try await handlers.round(Self.request(round: 2, chunk(index)), RPCContext(actor: "t")) }
        let started = try await handlers.round(Self.request(round: 2, .train(Adapterd_V1_FederatedTrain())), RPCContext(actor: "t"))
        #expect(started.state == "training" || started.state == "trained")
        await offline.services.training.waitUntilIdle()
        var collect = Adapterd_V1_FederatedCollect()
        collect.chunkSize = 1024
        let done = try await handlers.round(Self.request(round: 2, .collect(collect)), RPCContext(actor: "t"))
        #expect(done.state == "trained" && done.examples + done.heldOut == 6 && done.updateSize > 0, "\(done)")
        var update: [UInt8] = []
        for index in 0..<Int((done.updateSize + 1023) / 1024) {
            collect.index = Int32(index)
            update += try await handlers.round(Self.request(round: 2, .collect(collect)), RPCContext(actor: "t")).data
        }
        #expect(AdapterDigest.sha256(of: update) == done.updateSha256)
        let tensors = try TensorSet(safetensors: update, name: "update")
        #expect(tensors.names == FederatedAggregator(method: .productSVD).trainedNames(of: outcome.tensors))
    }
}
