// A bounded soak: an adapterd process (the release binary) behind a real mosquitto on loopback, one client sending
// Infer requests at a steady rate, each from a new session (the worst case for per-session state), for a set time.
// Every 10 seconds it reports the window's p50/p99 latency, replies lost so far, and the worker's resident memory
// and registry size; at the end it waits idle and reads the memory again. Release build only; not a test.
// Usage: SoakBenchmark ADAPTERD_BINARY MODEL_DIR ADAPTER_DIR [SECONDS=180] [RATE=50]
import AdapterdCore
import Foundation
import MQTTRPC

let arguments = CommandLine.arguments
guard arguments.count >= 4 else {
    FileHandle.standardError.write(Data("usage: SoakBenchmark ADAPTERD_BINARY MODEL_DIR ADAPTER_DIR [SECONDS] [RATE]\n".utf8))
    exit(2)
}
let binary = arguments[1], model = arguments[2], adapter = arguments[3]
let seconds = arguments.count > 4 ? Int(arguments[4]) ?? 180 : 180
let rate = arguments.count > 5 ? Double(arguments[5]) ?? 50 : 50

func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1e3 + Double(duration.components.attoseconds) / 1e15
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return .nan }
    let sorted = values.sorted()
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

/// The process's resident set in MiB (VmRSS).
func residentMiB(_ pid: pid_t) -> Double {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kib = Double(line.split(separator: " ").dropFirst().first ?? "") else { return .nan }
    return kib / 1024
}

func bytes(of path: String) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: path)[.size]) as? Int) ?? 0
}

/// What arrived for each correlation id, and when each was sent.
final class Ledger: @unchecked Sendable {
    private let lock = NSLock()
    private var sent: [Int: ContinuousClock.Instant] = [:]
    private var received: [Int: Int] = [:]
    private var latencies: [Double] = []

    func send(_ id: Int) { lock.withLock { sent[id] = .now } }

    func receive(_ id: Int) {
        lock.withLock {
            received[id, default: 0] += 1
            if received[id] == 1, let start = sent[id] { latencies.append(milliseconds(.now - start)) }
        }
    }

    /// The latencies recorded since the last call.
    func drainLatencies() -> [Double] { lock.withLock { defer { latencies.removeAll(keepingCapacity: true) }; return latencies } }

    /// (sent, answered, lost, doubled).
    var counts: (sent: Int, answered: Int, lost: Int, doubled: Int) {
        lock.withLock {
            let answered = received.count
            return (sent.count, answered, sent.count - answered, received.values.reduce(0) { $0 + max(0, $1 - 1) })
        }
    }
}

let directory = NSTemporaryDirectory() + "adapterd-soak-" + UUID().uuidString.prefix(8)
let broker = try MosquittoProcess(directory: directory + "/broker")
try broker.start()
defer { broker.stop() }
let dataDirectory = directory + "/data"
let worker = "soak"
let pid = try ChildProcess.spawn(
    binary,
    arguments: ["--broker", broker.url, "--worker-id", worker, "--model", model, "--data-dir", dataDirectory,
                "--adapter", "intent=\(adapter)", "--default-adapter", "intent", "--log-level", "warning"],
    output: directory + "/adapterd.log")
defer { ChildProcess.terminate(pid, within: .seconds(10)) }

let ledger = Ledger()
var options = MQTTOptions(host: "127.0.0.1", port: broker.port, clientID: "soak-client")
options.protocolVersion = .v5
let client = try MQTTClient(options: options)
let replies = "adapterd/v1/clients/soak-client/replies"
try client.subscribe(replies, qos: 1)
try await client.connect()
let floodLedger = Ledger()
let floodReplies = "adapterd/v1/clients/soak-client/flood"
let reader = Task {
    for await message in client.messages {
        guard let data = message.properties.correlationData, let id = Int(String(decoding: data, as: UTF8.self)) else { continue }
        (message.topic == floodReplies ? floodLedger : ledger).receive(id)
    }
}

func send(_ id: Int) throws {
    let body = #"{"text": "sensor \#(id % 9) reports vibration above threshold on motor \#(id % 97)", "session": "soak-\#(id)"}"#
    ledger.send(id)
    try client.publish(
        "adapterd/v1/\(worker)/infer/vibration/m\(id % 97)", payload: Array(body.utf8), qos: 1,
        properties: MQTTProperties(responseTopic: replies, correlationData: Array("\(id)".utf8)))
}

// Ready once a first request is answered.
var ready = false
for attempt in 0..<300 where !ready {
    try send(-1 - attempt)
    try await Task.sleep(for: .milliseconds(100))
    ready = ledger.counts.answered > 0
}
guard ready else {
    FileHandle.standardError.write(Data("adapterd did not answer; see \(directory)/adapterd.log\n".utf8))
    exit(1)
}
_ = ledger.drainLatencies()
let baseline = ledger.counts
let startRSS = residentMiB(pid)
print("soak: \(seconds) s at \(Int(rate)) req/s, each request a new session; adapterd pid \(pid), RSS at start \(String(format: "%.1f", startRSS)) MiB")
print("| t (s) | sent | unanswered at that moment | p50 ms | p99 ms | adapterd RSS MiB | adapterd.sqlite KiB |")
print("|---|---|---|---|---|---|---|")

let interval = Duration.nanoseconds(Int64(1e9 / rate))
let clock = ContinuousClock()
let start = clock.now
var next = start
var id = 0
var rssSamples: [(Int, Double)] = []
var windowEnd = start + .seconds(10)
while clock.now < start + .seconds(seconds) {
    try send(id)
    id += 1
    next += interval
    if clock.now >= windowEnd {
        let elapsed = Int(milliseconds(clock.now - start) / 1000)
        let latencies = ledger.drainLatencies()
        let rss = residentMiB(pid)
        rssSamples.append((elapsed, rss))
        let counts = ledger.counts
        let registry = bytes(of: dataDirectory + "/adapterd.sqlite") + bytes(of: dataDirectory + "/adapterd.sqlite-wal")
        print("| \(elapsed) | \(counts.sent - baseline.sent) | \(counts.lost - baseline.lost) | \(String(format: "%.2f", percentile(latencies, 0.5))) | \(String(format: "%.2f", percentile(latencies, 0.99))) | \(String(format: "%.1f", rss)) | \(registry / 1024) |")
        windowEnd += .seconds(10)
    }
    // Paced sends: sleep to the next slot (the deadline, not a fixed pause, so the rate holds).
    try await clock.sleep(until: next)
}
// Stragglers, then an idle spell.
try await Task.sleep(for: .seconds(5))
let final = ledger.counts
try await Task.sleep(for: .seconds(10))
let idleRSS = residentMiB(pid)

// A control flood (SOAK_FLOOD=N): N SetRoute calls sent at once over 1,500 names (past the 1,000-route bound),
// then the RSS once all are answered and after 30 s idle.
let flood = Int(ProcessInfo.processInfo.environment["SOAK_FLOOD"] ?? "") ?? 0
var floodFigures = ""
if flood > 0 {
    let before = residentMiB(pid)
    let answered = floodLedger
    try await client.subscribe(floodReplies, qos: 1, acknowledgedWithin: .seconds(5))
    let started = clock.now
    for index in 0..<flood {
        let body = #"{"name": "route-\#(index % 1500)", "topic": "adapterd/v1/+/infer/flood\#(index % 1500)/#", "adapter": "intent"}"#
        answered.send(index)
        try client.publish(
            "adapterd/v1/\(worker)/control/SetRoute", payload: Array(body.utf8), qos: 1,
            properties: MQTTProperties(responseTopic: floodReplies, correlationData: Array("\(index)".utf8)))
    }
    while answered.counts.answered < flood, clock.now < started + .seconds(120) { try await Task.sleep(for: .milliseconds(100)) }
    let took = milliseconds(clock.now - started) / 1000
    let after = residentMiB(pid)
    try await Task.sleep(for: .seconds(30))
    let settled = residentMiB(pid)
    floodFigures = String(format: "control flood: %d SetRoute answered %d in %.1f s; RSS %.1f MiB before, %.1f MiB when answered, %.1f MiB after 30 s idle",
                          flood, answered.counts.answered, took, before, after, settled)
}
reader.cancel()
client.disconnect()

let warm = rssSamples.count > 3 ? rssSamples[2].1 : rssSamples.first?.1 ?? startRSS
let peak = rssSamples.map(\.1).max() ?? startRSS
let end = rssSamples.last?.1 ?? startRSS
print("")
print("sent \(final.sent - baseline.sent), answered \(final.answered - baseline.answered), lost \(final.lost - baseline.lost), doubled \(final.doubled)")
print("adapterd RSS: start \(String(format: "%.1f", startRSS)) MiB, after 30 s \(String(format: "%.1f", warm)) MiB, peak \(String(format: "%.1f", peak)) MiB, end \(String(format: "%.1f", end)) MiB, after 10 s idle \(String(format: "%.1f", idleRSS)) MiB")
print("growth after warm-up: \(String(format: "%.1f", (end - warm) * 1024 / Double(max(1, final.sent - baseline.sent)) * 1000)) KiB per 1,000 requests")
if !floodFigures.isEmpty { print(floodFigures) }
