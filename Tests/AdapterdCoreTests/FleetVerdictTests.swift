import AdapterdClient
import AdapterdCore
import AdapterdTestSupport
import FleetControl
import Foundation
import Testing

/// Fleet rollout verdicts on a real mosquitto with several workers: like for like when each site sees its own
/// traffic, shadow agreement, rollouts one after another (`FleetRolloutTests` holds the fleet and traffic helpers).
@Suite("Fleet rollout verdicts", .serialized)
struct FleetVerdictTests {
    typealias Fleet = FleetRolloutTests.Fleet
    typealias Traffic = FleetRolloutTests.Traffic

    static func policy() -> RolloutPolicy { FleetRolloutTests.policy() }

    @Test("with each worker's traffic its own mix, a label-identical version completes; the next rollout on the same state file runs after it, and fleet history lists both with their verdicts")
    func heterogeneousFleetAndRolloutsInARow() async throws {
        let binary = Harness.root + "/.build/debug/adapterctl"
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build adapterctl first (scripts/test does)")
        let fleet = try await Fleet(count: 4)
        // The classifier scaled by 1.01: every label the same as v1's on every input.
        let scaled = try Harness.adapterCopy("intent", editing: "classifier.weight") { values in
            for index in values.indices { values[index] *= 1.01 }
        }
        defer { try? FileManager.default.removeItem(atPath: scaled) }
        let directory = Harness.temporaryDirectory()
        let state = directory + "/rollout.sqlite"
        let mixes = [
            ["turn on the kitchen lights", "lights off in the hall"], ["set the thermostat to 21", "it is too cold in here"],
            ["lock the front door", "is the garage open", "turn on the porch light"], ["dim the bedroom lights"],
        ]
        let traffic = Traffic()
        let (first, second) = try await traffic.during(broker: fleet.broker.url, workers: fleet.ids, mixes: mixes) {
            let controller = FleetController(brokerURL: fleet.broker.url, store: try FleetStore(path: state))
            let first = try await controller.start(
                name: "alerts", version: "v2", adapterDirectory: scaled, selector: FleetSelector(""), policy: Self.policy())
            let second = try await controller.start(
                name: "alerts", version: "v3", adapterDirectory: Harness.adapterDirectory("intent"), selector: FleetSelector(""), policy: Self.policy())
            return (first, second)
        }
        #expect(first.state == "completed", "\(first.reason)")
        #expect(second.state == "completed", "\(second.reason)")
        #expect(second.workers.values.allSatisfy { $0.active == "v3" }, "\(second.workers)")
        let drift = first.verdicts?.first?.criteria.first { $0.name == "label drift" }
        #expect(drift?.outcome == .pass && (drift?.high ?? 1) <= 0.3, "\(drift?.summary ?? "no drift criterion")")
        let history = try FleetStore(path: state).history()
        #expect(history.map(\.version) == ["v2"] && history.first?.state == "completed")

        let lister = try TestProcess(binary, arguments: ["fleet", "history", "--state", state], output: directory + "/history.txt")
        #expect(lister.wait(timeout: .seconds(20)) == 0)
        let listed = try String(contentsOfFile: directory + "/history.txt", encoding: .utf8)
        #expect(listed.contains("alerts v2: completed") && listed.contains("alerts v3: completed") && listed.contains("label drift"), "\(listed)")
        await fleet.stop()
    }

    @Test("with shadow comparison, a version that permutes its labels (their shares nearly alike) is stopped at the canary by agreement, and every worker that got it is back on v1")
    func labelPermutationStoppedByShadowAgreement() async throws {
        let fleet = try await Fleet(count: 3)
        // Each label's classifier row moved to the label before it: the same inputs get other labels.
        let permuted = try Harness.adapterCopy("intent", editing: "classifier.weight") { values in
            let width = values.count / 4
            values = Array(values[width...] + values[..<width])
        }
        defer { try? FileManager.default.removeItem(atPath: permuted) }
        let state = Harness.temporaryDirectory() + "/rollout.sqlite"
        var policy = Self.policy()
        policy.shadow = 1
        policy.minAgreement = 0.9
        let traffic = Traffic()
        let report = try await traffic.during(broker: fleet.broker.url, workers: fleet.ids) {
            try await FleetController(brokerURL: fleet.broker.url, store: try FleetStore(path: state)).start(
                name: "alerts", version: "v2", adapterDirectory: permuted, selector: FleetSelector(""), policy: policy)
        }
        #expect(report.state == "aborted")
        #expect(report.reason.contains("wave 1") && report.reason.contains("shadow agreement"), "\(report.reason)")
        let agreement = report.verdicts?.first?.criteria.first { $0.name == "shadow agreement" }
        #expect((agreement?.value ?? 1) < 0.5, "\(agreement?.summary ?? "no agreement criterion")")
        #expect(report.workers.values.allSatisfy { $0.active == "v1" }, "\(report.workers)")
        #expect(traffic.counts.failed.isEmpty, "\(traffic.counts.failed.prefix(3))")
        await fleet.stop()
    }
}
