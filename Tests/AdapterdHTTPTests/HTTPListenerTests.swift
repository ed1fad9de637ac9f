import AdapterdAPI
import AdapterdClient
import AdapterdCore
import AdapterdHTTP
import AdapterdTestSupport
import Foundation
import FoundationNetworking
import Logging
import MQTTRPC
import Prometheus
import ServiceLifecycle
import Testing
#if canImport(FoundationNetworking)
#endif

/// A worker with its HTTP listener on a free loopback port, a real mosquitto, the real model.
final class ServedWorker: Sendable {
    let broker: MosquittoProcess
    let worker: Worker
    let group: ServiceGroup
    let task: Task<Void, any Error>
    let port: Int

    init() async throws {
        broker = try Harness.broker(persistent: true)
        var configuration = Harness.configuration(broker: broker)
        configuration.metricsInterval = .seconds(1)
        var logger = Logger(label: "test-http")
        logger.logLevel = .warning
        let registry = PrometheusCollectorRegistry()
        worker = try Worker(configuration: configuration, logger: logger, metricsFactory: HTTPListener.metricsFactory(registry: registry))
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let http = HTTPListener.application(worker: worker, registry: registry, host: "127.0.0.1", port: 0, logger: logger) { port in
            continuation.yield(port)
        }
        group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [worker, http], logger: logger))
        let group = group
        task = Task { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        port = await iterator.next() ?? 0
        _ = try await Harness.eventually(timeout: .seconds(5)) { try await get("/readyz").status == 200 }
    }

    func get(_ path: String) async throws -> (status: Int, body: String) {
        let (data, response) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }

    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
        broker.stop()
    }
}

/// Prometheus text exposition, parsed strictly enough to catch malformed output.
struct PrometheusText {
    var samples: [String: Double] = [:]

    init(_ text: String) throws {
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                throw ParseError(line: String(line))
            }
            let series = String(line[..<space])
            let name = series.prefix { $0 != "{" }
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == ":" }),
                  series.count == name.count || (series.hasSuffix("}") && series.dropFirst(name.count).hasPrefix("{"))
            else { throw ParseError(line: String(line)) }
            samples[series] = value
        }
    }

    struct ParseError: Error { let line: String }
}

@Suite("HTTP listener and metrics", .serialized)
struct HTTPListenerTests {
    func infer(_ client: AdapterdClient, adapter: String, count: Int) async throws {
        for index in 0..<count {
            var request = Adapterd_V1_InferRequest()
            request.text = "reading \(index) from motor 7"
            request.adapter = adapter
            _ = try await client.infer(request)
        }
    }

    @Test("after known traffic, the metrics topic and /metrics carry the same exact request counts per adapter version")
    func countsAgree() async throws {
        let served = try await ServedWorker()
        let client = try await AdapterdClient(brokerURL: served.broker.url, worker: served.worker.configuration.workerID)
        try await infer(client, adapter: "intent", count: 5)
        try await infer(client, adapter: "severity", count: 3)
        try await infer(client, adapter: "no-such-adapter", count: 2)
        try await infer(client, adapter: "", count: 1)

        // The next document published after the traffic carries it in its totals.
        let listener = try MQTTClient(options: MQTTOptions(host: "127.0.0.1", port: served.broker.port, clientID: "metrics-" + UUID().uuidString.prefix(6)))
        try listener.subscribe(served.worker.topics.metrics, qos: 0)
        try await listener.connect()
        var snapshot: MetricsSnapshot?
        for await message in listener.messages {
            let document = try JSONDecoder().decode(MetricsSnapshot.self, from: Data(message.payload))
            if document.adapters.reduce(0, { $0 + $1.requestsTotal }) == 11 {
                snapshot = document
                break
            }
        }
        listener.disconnect()
        let rows = Dictionary(uniqueKeysWithValues: try #require(snapshot).adapters.map { ("\($0.name)@\($0.version)", $0) })
        #expect(rows["intent@v1"]?.requestsTotal == 5)
        #expect(rows["intent@v1"]?.state == "active" && rows["intent@v1"]?.cache == "resident")
        #expect(rows["severity@v1"]?.requestsTotal == 3)
        #expect(rows["(unresolved)@"]?.errorsTotal == ["NOT_FOUND": 2])
        #expect(rows["@"]?.requestsTotal == 1)
        #expect(snapshot?.cache.budgetBytes == served.worker.configuration.cacheMaxBytes)
        #expect(snapshot?.worker == served.worker.configuration.workerID)

        let text = try await served.get("/metrics")
        #expect(text.status == 200)
        let metrics = try PrometheusText(text.body)
        #expect(metrics.samples[#"adapterd_requests_total{adapter="intent",version="v1",status="OK"}"#] == 5)
        #expect(metrics.samples[#"adapterd_requests_total{adapter="severity",version="v1",status="OK"}"#] == 3)
        #expect(metrics.samples[#"adapterd_requests_total{adapter="(unresolved)",version="",status="NOT_FOUND"}"#] == 2)
        #expect(metrics.samples[#"adapterd_request_duration_seconds_count{adapter="intent",version="v1"}"#] == 5)
        #expect(metrics.samples["adapterd_cache_budget_bytes"] == Double(served.worker.configuration.cacheMaxBytes))

        let api = try await served.get("/api/metrics")
        #expect(try JSONDecoder().decode(MetricsSnapshot.self, from: Data(api.body.utf8)).adapters.count == 4)
        client.close()
        try await served.stop()
    }

    @Test("/readyz answers 503 while the broker is down and 200 once the worker has reconnected; /healthz stays 200")
    func readinessFollowsTheBroker() async throws {
        let served = try await ServedWorker()
        #expect(try await served.get("/readyz").status == 200)
        served.broker.stop()
        #expect(try await Harness.eventually(timeout: .seconds(5)) { try await served.get("/readyz").status == 503 }, "/readyz did not turn 503 within 5 s of the broker stopping")
        #expect(try await served.get("/healthz").status == 200)
        try served.broker.start()
        #expect(try await Harness.eventually(timeout: .seconds(10)) { try await served.get("/readyz").status == 200 }, "/readyz did not return to 200 within 10 s of the broker restarting")
        try await served.stop()
    }

    @Test("the dashboard is one self-contained page fed by /api/metrics, with nothing fetched from elsewhere")
    func dashboardIsSelfContained() async throws {
        let served = try await ServedWorker()
        let page = try await served.get("/")
        #expect(page.status == 200)
        #expect(page.body.contains("/api/metrics"))
        #expect(page.body.contains("<svg") || page.body.contains("createElementNS"))
        #expect(!page.body.contains("http://") && !page.body.contains("https://") && !page.body.contains("//cdn"))
        try await served.stop()
    }
}
