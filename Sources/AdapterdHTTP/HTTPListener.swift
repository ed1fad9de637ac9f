import AdapterdCore
import Foundation
import Hummingbird
import Logging
import Prometheus

/// The worker's HTTP listener (`--http HOST:PORT`): Prometheus exposition at `/metrics`, `/healthz` (the process
/// is up), `/readyz` (connected to the broker with the model loaded), the metrics document at `/api/metrics`, the
/// last three minutes per second at `/api/history`, and the self-contained dashboard at `/`.
public enum HTTPListener {
    /// The Hummingbird application serving `worker`'s endpoints; run it as a service beside the worker.
    /// `onRunning` gets the bound port (useful with port 0).
    public static func application(
        worker: Worker, registry: PrometheusCollectorRegistry, host: String, port: Int, logger: Logger,
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let router = Router()
        router.get("/healthz") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        router.get("/readyz") { _, _ in
            let ready = worker.isReady
            return Response(
                status: ready ? .ok : .serviceUnavailable, headers: [.contentType: "text/plain; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: ready ? "ready\n" : "not ready: not connected to the broker\n")))
        }
        router.get("/metrics") { _, _ in
            var buffer: [UInt8] = []
            registry.emit(into: &buffer)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: buffer)))
        }
        router.get("/api/metrics") { _, _ in
            let snapshot = await worker.currentMetrics()
            return Response(
                status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                body: .init(byteBuffer: ByteBuffer(bytes: snapshot.json())))
        }
        router.get("/api/history") { _, _ in
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            let body = (try? encoder.encode(await worker.metricsHistory())) ?? Data("[]".utf8)
            return Response(
                status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        let page = Dashboard.page
        router.get("/") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(bytes: page)))
        }
        return Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "adapterd"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) }, logger: logger)
    }

    /// A metrics factory writing to `registry`, with buckets suited to adapterd's figures.
    public static func metricsFactory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(20), .milliseconds(50),
            .milliseconds(100), .milliseconds(200), .milliseconds(500), .seconds(1), .seconds(2), .seconds(5),
        ]
        factory.valueHistogramBuckets["adapterd_batch_size"] = [1, 2, 4, 8, 16, 32, 64]
        return factory
    }

    /// Splits `HOST:PORT`.
    public static func parse(address: String) throws -> (host: String, port: Int) {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]), (0...65535).contains(port) else {
            throw HTTPListenerError.badAddress(address)
        }
        let host = String(address[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        return (host.isEmpty ? "127.0.0.1" : host, port)
    }
}
