import AdapterdAPI
import AdapterdClient
import AdapterFormats
import FederatedLearning
import Foundation
import MQTTRPC

/// Why a worker dropped out of a round, and what had been sent to it by then.
struct ParticipantError: Error {
    var reason: String
    var bytesDown: Int64 = 0
}

/// One round's steps with one worker, as the federated controller takes them: offer, the global adapter's missing
/// chunks, train, poll until trained, then the update chunk by chunk (a chunk that times out is asked again). Every
/// step is repeatable, so a resumed controller picks a worker's round up where it was.
struct FederatedParticipant: Sendable {
    let connect: @Sendable (_ worker: String) async throws -> AdapterdClient
    let key: (name: String, run: String, round: Int)
    let offer: Adapterd_V1_FederatedOffer
    let global: [UInt8]
    let chunkSize: Int
    let timeout: Duration
    let deadline: ContinuousClock.Instant
    /// Between polls of a training worker.
    var pollInterval: Duration = .milliseconds(250)
    /// Attempts at a step that times out.
    var attempts = 3

    /// Offers the round to `worker`: nil when it accepts, else why not.
    func offer(to worker: String) async -> String? {
        do {
            let client = try await connect(worker)
            defer { client.close() }
            _ = try await step(.offer(offer), on: client)
            return nil
        } catch let error as ParticipantError {
            return error.reason
        } catch {
            return "unreachable: \(error)"
        }
    }

    /// Runs the round on `worker`: its update, bytes up and bytes down.
    func train(on worker: String) async -> Result<(ClientUpdate, Int64, Int64), ParticipantError> {
        var bytesDown: Int64 = 0
        do {
            let client = try await connect(worker)
            defer { client.close() }
            var reply = try await step(.offer(offer), on: client)
            let missing = reply.missing.flatMap { Int($0.first)..<Int($0.first + $0.count) }
            for index in missing {
                var chunk = Adapterd_V1_PushChunk()
                chunk.index = Int32(index)
                chunk.data = Data(global[(index * chunkSize)..<min(global.count, (index + 1) * chunkSize)])
                reply = try await step(.globalChunk(chunk), on: client)
                bytesDown += Int64(chunk.data.count)
            }
            reply = try await step(.train(Adapterd_V1_FederatedTrain()), on: client)
            while reply.state != "trained" {
                guard reply.state != "failed" else { throw ParticipantError(reason: "its training failed: \(reply.error)") }
                guard ContinuousClock.now < deadline else {
                    throw ParticipantError(reason: "missed the round's deadline (step \(reply.step) of \(reply.totalSteps))")
                }
                try await Task.sleep(for: pollInterval)
                reply = try await step(.collect(Adapterd_V1_FederatedCollect()), on: client)
            }
            let size = Int(reply.updateSize), chunks = (size + chunkSize - 1) / chunkSize
            var update: [UInt8] = []
            update.reserveCapacity(size)
            for index in 0..<chunks {
                var collect = Adapterd_V1_FederatedCollect()
                collect.index = Int32(index)
                collect.chunkSize = Int32(chunkSize)
                let part = try await step(.collect(collect), on: client)
                update += part.data
            }
            guard update.count == size, AdapterDigest.sha256(of: update) == reply.updateSha256 else {
                throw ParticipantError(reason: "its update arrived damaged (\(update.count) of \(size) bytes, digest mismatch)")
            }
            let tensors = try TensorSet(safetensors: update, name: "the update of \(worker)")
            let accuracy: Double? = reply.heldOut > 0 && reply.localAccuracy >= 0 ? reply.localAccuracy : nil
            return .success((ClientUpdate(worker: worker, tensors: tensors, examples: Int(reply.examples), localAccuracy: accuracy), Int64(update.count), bytesDown))
        } catch var error as ParticipantError {
            error.bytesDown += bytesDown
            return .failure(error)
        } catch {
            return .failure(ParticipantError(reason: "\(error)", bytesDown: bytesDown))
        }
    }

    /// Sends one step, again on a timeout; a refusal throws its message.
    private func step(_ step: Adapterd_V1_FederatedRoundRequest.OneOf_Step, on client: AdapterdClient) async throws -> Adapterd_V1_FederatedRoundReply {
        var request = Adapterd_V1_FederatedRoundRequest()
        request.name = key.name
        request.run = key.run
        request.round = Int32(key.round)
        request.step = step
        var attempt = 0
        while true {
            attempt += 1
            do {
                let reply = try await client.control(.federatedRound, request, timeout: timeout)
                guard RPCStatus(reply.status) == .ok else { throw ParticipantError(reason: "\(RPCStatus(reply.status)): \(reply.error)") }
                return reply
            } catch let error as MQTTError where attempt < attempts && ContinuousClock.now < deadline {
                _ = error
                continue
            }
        }
    }
}
