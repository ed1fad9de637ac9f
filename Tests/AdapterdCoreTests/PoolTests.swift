import AdapterdAPI
import AdapterdClient
import AdapterdCore
import AdapterdTestSupport
import Foundation
import MQTTRPC
import Testing

/// Three adapterd processes in one pool behind one mosquitto (MQTT 5 shared subscriptions).
@Suite("Worker pools", .serialized)
struct PoolTests {
    static let binary = Harness.root + "/.build/debug/adapterd"

    func send(_ raw: RawClient, _ range: Range<Int>) throws {
        for index in range {
            try raw.publish(Topics(worker: Topics.poolWorker).infer + "/vibration/m\(index % 7)", Array(#"{"text": "reading \#(index) on motor 7", "adapter": "intent"}"#.utf8), correlation: "p\(index)")
        }
    }

    /// Replies to inference requests, by correlation, with the worker that answered.
    func answers(_ raw: RawClient) -> [(correlation: String, worker: String)] {
        Self.answers(raw.received, replyTopic: raw.replyTopic)
    }

    /// The inference replies among `messages`, by correlation, with the worker that answered.
    static func answers(_ messages: [MQTTMessage], replyTopic: String) -> [(correlation: String, worker: String)] {
        messages.filter { $0.topic == replyTopic }.compactMap { message in
            guard let correlation = message.properties.correlationData.map({ String(decoding: $0, as: UTF8.self) }), correlation.hasPrefix("p"),
                  let reply = try? Adapterd_V1_InferReply(jsonUTF8Bytes: message.payload), reply.status == .ok else { return nil }
            return (correlation, reply.worker)
        }
    }

    @Test("three pooled workers share 300 requests, each answered exactly once; pool control reaches all; the rest carry on when one is killed")
    func poolSharesLoad() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build adapterd first (scripts/test does)")
        let broker = try Harness.broker()
        let ids = (0..<3).map { "pool\($0)-" + UUID().uuidString.prefix(4).lowercased() }
        var pids: [String: pid_t] = [:]
        for id in ids {
            let directory = Harness.temporaryDirectory()
            pids[id] = try ChildProcess.spawn(Self.binary, arguments: [
                "--broker", broker.url, "--worker-id", id, "--model", Harness.modelDirectory, "--data-dir", directory,
                "--adapter", "intent=" + Harness.adapterDirectory("intent"), "--pool", "edge",
            ], output: directory + "/adapterd.log", environment: ProcessInfo.processInfo.environment.merging(["OMP_NUM_THREADS": "1"]) { $1 })
        }
        defer { for pid in pids.values { ChildProcess.terminate(pid, within: .seconds(2)) } }
        let raw = try await RawClient(broker: broker)
        for id in ids { try raw.client.subscribe(Topics(worker: id).status, qos: 1) }
        let allOnline = await raw.waitUntil(timeout: .seconds(20)) { messages in
            Set(messages.filter { String(decoding: $0.payload, as: UTF8.self).contains("\"state\":\"online\"") }.map(\.topic)).count == 3
        }
        try #require(allOnline, "the three workers did not all report online within 20 s")

        // A control command on the pool topic reaches every worker.
        try raw.publish(Topics(worker: Topics.poolWorker).control("GetStatus"), Array("{}".utf8), correlation: "status")
        let allAnswered = await raw.waitUntil(timeout: .seconds(10)) { messages in
            messages.filter { $0.properties.correlationData == Array("status".utf8) }.count >= 3
        }
        #expect(allAnswered, "pool GetStatus was not answered by three workers within 10 s")
        let statuses = raw.received.filter { $0.properties.correlationData == Array("status".utf8) }
            .compactMap { try? Adapterd_V1_GetStatusReply(jsonUTF8Bytes: $0.payload).worker }
        #expect(Set(statuses) == Set(ids) && statuses.count == 3)
        // adapterctl gathers the pool's replies, one per worker.
        let listing = Harness.temporaryDirectory() + "/adapters.txt"
        let ctl = try ChildProcess.spawn(Harness.root + "/.build/debug/adapterctl", arguments: [
            "adapters", "list", "--broker", broker.url, "--worker", Topics.poolWorker, "--replies", "3",
        ], output: listing)
        #expect(ChildProcess.wait(ctl, timeout: .seconds(30)) == 0)
        let listed = try String(contentsOfFile: listing, encoding: .utf8)
        #expect(ids.allSatisfy { listed.contains("== \($0)") }, "\(listed)")
        #expect(listed.components(separatedBy: "intent ").count - 1 == 3, "each worker lists its intent adapter")

        try send(raw, 0..<150)
        let replyTopic = raw.replyTopic
        _ = await raw.waitUntil(timeout: .seconds(20)) { Self.answers($0, replyTopic: replyTopic).count >= 150 }
        let first = answers(raw)
        #expect(first.count == 150)
        #expect(Set(first.map(\.correlation)).count == 150, "each answered exactly once")
        let perWorker = Dictionary(grouping: first, by: \.worker).mapValues(\.count)
        #expect(Set(perWorker.keys) == Set(ids), "every worker took some: \(perWorker)")

        // One worker dies without a goodbye; the pool keeps answering everything sent afterwards.
        kill(pids[ids[0]]!, SIGKILL)
        _ = ChildProcess.wait(pids[ids[0]]!, timeout: .seconds(10))
        pids[ids[0]] = nil  // reaped: its number must not be signalled again
        // The broker has dropped it from the pool once it publishes its Last Will (status offline).
        let deadStatus = Topics(worker: ids[0]).status
        let offline = await raw.waitUntil(timeout: .seconds(10)) { messages in
            messages.contains { $0.topic == deadStatus && String(decoding: $0.payload, as: UTF8.self).contains("offline") }
        }
        #expect(offline, "the killed worker's Last Will did not arrive within 10 s")
        try send(raw, 150..<300)
        _ = await raw.waitUntil(timeout: .seconds(20)) { Self.answers($0, replyTopic: replyTopic).count >= 300 }
        let all = answers(raw)
        #expect(all.count == 300)
        #expect(Set(all.map(\.correlation)) == Set((0..<300).map { "p\($0)" }))
        let second = all.filter { Int($0.correlation.dropFirst())! >= 150 }
        #expect(!second.contains { $0.worker == ids[0] })
        #expect(Set(second.map(\.worker)) == Set(ids.dropFirst()))
        raw.close()
    }
}
