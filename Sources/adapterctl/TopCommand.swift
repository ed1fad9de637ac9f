import AdapterdClient
import ArgumentParser
import Foundation
import MQTTRPC

/// `adapterctl top`: a live table of what workers are doing, from their metrics and status topics.
struct TopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top", abstract: "Live view of workers: health, throughput, latency, errors and cache state per adapter version.")

    @Option(help: "Broker URL (default: $ADAPTERD_BROKER or mqtt://127.0.0.1:1883).") var broker: String?
    @Option(help: "Worker id, or + for every worker on the broker.") var worker = "+"
    @Option(help: "Exit after this many screens (default: run until interrupted).") var iterations: Int?

    func run() async throws {
        let url = broker ?? ProcessInfo.processInfo.environment["ADAPTERD_BROKER"] ?? "mqtt://127.0.0.1:1883"
        var options = try MQTTOptions.parse(url: url, clientID: "adapterctl-top-" + UUID().uuidString.prefix(8).lowercased())
        options.protocolVersion = .v5
        let client = try MQTTClient(options: options)
        try client.subscribe("\(Topics.prefix)/\(worker)/metrics", qos: 0)
        try client.subscribe("\(Topics.prefix)/\(worker)/status", qos: 0)
        do {
            try await client.connect()
        } catch {
            FileHandle.standardError.write(Data("adapterctl: cannot reach the broker at \(url): \(error)\n".utf8))
            throw ExitCode(2)
        }
        var screen = TopScreen(interactive: isatty(STDOUT_FILENO) == 1)
        var shown = 0
        write(screen.render(now: Date()))
        for await message in client.messages {
            let levels = message.topic.split(separator: "/")
            guard levels.count == 4 else { continue }
            let id = String(levels[2])
            if levels[3] == "metrics", let snapshot = try? JSONDecoder().decode(MetricsSnapshot.self, from: Data(message.payload)) {
                screen.metrics[id] = snapshot
            } else if levels[3] == "status", let status = try? JSONDecoder().decode(WorkerStatus.self, from: Data(message.payload)) {
                screen.status[id] = status.state
            } else {
                continue
            }
            write(screen.render(now: Date()))
            shown += levels[3] == "metrics" ? 1 : 0
            if let iterations, shown >= iterations { break }
        }
        client.disconnect()
    }

    private func write(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }
}

/// One screen of `adapterctl top`: per worker, a health line and a row per adapter version.
struct TopScreen {
    var metrics: [String: MetricsSnapshot] = [:]
    var status: [String: String] = [:]
    /// On a terminal each screen replaces the last; otherwise screens follow one another.
    let interactive: Bool

    func render(now: Date) -> String {
        var out = interactive ? "\u{1B}[H\u{1B}[2J" : ""
        out += "adapterctl top — \(now.formatted(.iso8601))\n"
        let workers = Set(metrics.keys).union(status.keys).sorted()
        if workers.isEmpty { out += "waiting for workers' metrics (published every metrics interval)…\n" }
        for id in workers {
            let state = status[id] ?? metrics[id]?.state ?? "?"
            guard let snapshot = metrics[id] else {
                out += "\n\(id)  \(state)  (no metrics yet)\n"
                continue
            }
            let cache = snapshot.cache
            let lookups = cache.hits + cache.misses
            out += "\n" + [
                "\(id)  \(state.uppercased())", "up \(Self.duration(snapshot.uptimeSeconds))", "rss \(Self.megabytes(snapshot.rssBytes))",
                String(format: "%.1f req/s", snapshot.requests.perSecond), "in-flight \(snapshot.requests.inFlight)",
                "queue \(snapshot.requests.queueDepth)", String(format: "batch %.1f (max %d)", snapshot.batches.meanSize, snapshot.batches.maxSize),
                "failed \(snapshot.requests.failed)/\(snapshot.requests.total)",
            ].joined(separator: "  ") + "\n"
            out += "cache \(Self.megabytes(cache.bytes)) of \(Self.megabytes(cache.budgetBytes))  hits "
                + (lookups > 0 ? String(format: "%.1f%%", Double(cache.hits) * 100 / Double(lookups)) : "-")
                + "  loads \(cache.loads)  evictions \(cache.evictions)"
            if let merged = snapshot.engine?.mergedAdapters, let bytes = snapshot.engine?.mergedBytes, let budget = snapshot.engine?.mergeBudgetBytes {
                out += "  merged \(merged) (\(Self.megabytes(bytes)) of \(Self.megabytes(budget)))"
            }
            out += "\n"
            // INT8 and BF16 workers: the share of each version's rows the label check answered by a more exact pass.
            let checked = snapshot.engine.map { $0.precision != "fp32" } ?? false
            var rows = [["ADAPTER", "VERSION", "STATE", "CACHE", "REQ/S", "P50 ms", "P95 ms", "P99 ms", "ERRORS", "TOTAL", "LAST USED"]
                + (checked ? ["RECHECKED"] : [])]
            for row in snapshot.adapters {
                let errors = row.errors.values.reduce(0, +)
                let errorText = errors == 0 ? "0" : row.errors.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
                let columns: [String] = [
                    row.name.isEmpty ? "(base model)" : row.name, row.version, row.state, row.cache,
                    String(format: "%.1f", row.perSecond),
                    row.latencyMs.map { String(format: "%.1f", $0.p50) } ?? "-",
                    row.latencyMs.map { String(format: "%.1f", $0.p95) } ?? "-",
                    row.latencyMs.map { String(format: "%.1f", $0.p99) } ?? "-",
                    errorText, String(row.requestsTotal), row.lastUsed.map { Self.ago($0, now: now) } ?? "never",
                ]
                rows.append(columns + (checked ? [Self.recheckShare(row)] : []))
            }
            out += Table.render(rows) + "\n"
        }
        return out
    }

    /// "12.5% of 400": the version's rows a more exact pass of the label check answered, of those it looked at.
    static func recheckShare(_ row: MetricsSnapshot.AdapterVersion) -> String {
        guard let checks = row.labelChecks, checks > 0 else { return "-" }
        return String(format: "%.1f%% of %d", Double(row.labelRechecks ?? 0) * 100 / Double(checks), checks)
    }

    static func megabytes(_ bytes: Int) -> String { String(format: "%.1f MB", Double(bytes) / 1e6) }

    static func duration(_ seconds: Double) -> String {
        let total = Int(seconds)
        return total >= 3600 ? "\(total / 3600)h\(String(format: "%02d", total % 3600 / 60))m" : "\(total / 60)m\(String(format: "%02d", total % 60))s"
    }

    static func ago(_ iso: String, now: Date) -> String {
        guard let date = try? Date(iso, strategy: .iso8601) else { return iso }
        return "\(max(0, Int(now.timeIntervalSince(date))))s ago"
    }
}
