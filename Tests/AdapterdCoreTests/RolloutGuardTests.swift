import AdapterdAPI
import AdapterdClient
import AdapterdCore
import AdapterdTestSupport
import AdapterRuntime
import CanaryJudging
import Foundation
import MQTTRPC
import Testing

@Suite("RolloutGuard")
struct RolloutGuardTests {
    let rollout = Rollout(name: "alerts", splits: ["v1": 90, "v2": 10])!
    let stable = AdapterCache.Key(name: "alerts", version: "v1")
    let canary = AdapterCache.Key(name: "alerts", version: "v2")

    @Test("a canary failing 20% of requests against a clean stable version is named, with the figures")
    func errorRate() async {
        let guardian = RolloutGuard(policy: CanaryThresholds(minRequests: 50))
        for index in 0..<60 {
            await guardian.record(stable, ok: true, latencyMs: 10)
            await guardian.record(canary, ok: index % 5 != 0, latencyMs: 10)
        }
        let verdict = await guardian.verdict(rollout, stable: "v1")
        #expect(verdict?.canary == "v2")
        #expect(verdict?.reason.contains("error rate 20.0%") == true)
    }

    @Test("a canary twice as slow at p95 is named; a healthy one, or one with too few requests, is not")
    func latencyAndMinimum() async {
        let guardian = RolloutGuard(policy: CanaryThresholds(minRequests: 50, maxLatencyRatio: 1.5))
        for _ in 0..<60 { await guardian.record(stable, ok: true, latencyMs: 10) }
        for _ in 0..<49 { await guardian.record(canary, ok: true, latencyMs: 25) }
        #expect(await guardian.verdict(rollout, stable: "v1") == nil, "below the minimum")
        await guardian.record(canary, ok: true, latencyMs: 25)
        #expect(await guardian.verdict(rollout, stable: "v1")?.reason.contains("p95 latency") == true)
        await guardian.reset(name: "alerts")
        for _ in 0..<60 {
            await guardian.record(stable, ok: true, latencyMs: 10)
            await guardian.record(canary, ok: true, latencyMs: 11)
        }
        #expect(await guardian.verdict(rollout, stable: "v1") == nil)
    }

    @Test("the worker ends a rollout whose canary breaks its policy, records why, publishes an event and releases the canary's sessions")
    func workerRollsBackBadCanary() async throws {
        let broker = try Harness.broker()
        var configuration = Harness.configuration(broker: broker)
        configuration.preload = [("alerts", "v1", Harness.adapterDirectory("intent")), ("alerts", "v2", Harness.adapterDirectory("severity"))]
        // A policy no canary can meet: any canary latency counts as too slow once both have 5 requests.
        configuration.guardPolicy = CanaryThresholds(minRequests: 5, maxErrorRateIncrease: 0.05, maxLatencyRatio: 0)
        let worker = try await RunningWorker(configuration)
        let client = try await AdapterdClient(brokerURL: broker.url, worker: configuration.workerID)
        let events = try await RawClient(broker: broker)
        try events.client.subscribe(Topics(worker: configuration.workerID).events, qos: 1)
        var split = Adapterd_V1_SetRolloutRequest()
        split.name = "alerts"
        split.splits = ["v1": 50, "v2": 50]
        _ = try await client.control(.setRollout, split)
        var versions: [String] = []
        for index in 0..<40 {
            var request = Adapterd_V1_InferRequest()
            request.text = "reading \(index)"
            request.adapter = "alerts"
            request.session = "s\(index)"
            versions.append(try await client.infer(request).version)
        }
        // After the rollback every new session goes to the stable version.
        #expect(versions.suffix(10).allSatisfy { $0 == "v1" })
        // Sessions that had been pinned to the canary are served by the stable version again.
        let canarySessions = versions.indices.filter { versions[$0] == "v2" }
        #expect(!canarySessions.isEmpty)
        for index in canarySessions {
            var request = Adapterd_V1_InferRequest()
            request.text = "reading again"
            request.adapter = "alerts"
            request.session = "s\(index)"
            #expect(try await client.infer(request).version == "v1")
        }
        var history = Adapterd_V1_HistoryRequest()
        history.name = "alerts"
        let trail = try await client.control(.history, history).events
        let rollback = try #require(trail.last)
        #expect(rollback.action == "rolled back" && rollback.actor == "guard" && rollback.version == "v2")
        #expect(rollback.reason.contains("p95 latency"))
        let published = await events.waitForReplies(1, timeout: .seconds(5))
        #expect(published.contains { String(decoding: $0.payload, as: UTF8.self).contains("\"actor\":\"guard\"") })
        events.close()
        client.close()
        try await worker.stop()
    }
}
