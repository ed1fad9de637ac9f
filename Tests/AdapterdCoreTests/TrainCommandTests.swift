import AdapterdCore
import AdapterdTestSupport
import AdapterEngine
import Foundation
import Testing

/// `adapterctl train` as a user runs it: examples in a file, a PEFT directory out, figures on stdout.
@Suite("adapterctl train", .serialized)
struct TrainCommandTests {
    static let binary = Harness.root + "/.build/debug/adapterctl"

    /// Runs adapterctl with `arguments`; its exit code and standard output.
    static func run(_ arguments: [String], in directory: String) throws -> (code: Int32?, output: String) {
        let output = directory + "/stdout-\(UUID().uuidString.prefix(6))"
        let pid = try ChildProcess.spawn(binary, arguments: arguments, output: output)
        let code = ChildProcess.wait(pid, timeout: .seconds(120))
        return (code, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
    }

    @Test("trains from a JSON Lines file, writes a directory the engine loads, prints the figures; --from trains it further")
    func trainsAndWrites() throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build adapterctl first (scripts/test does)")
        let directory = Harness.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let lines = [
            ("turn on the kitchen lights", "lights"), ("switch off the hallway lamp", "lights"), ("dim the bedroom lights", "lights"),
            ("smoke detected in the basement", "alarm"), ("the fire alarm is ringing", "alarm"), ("glass break sensor triggered", "alarm"),
        ].map { #"{"text": "\#($0.0)", "label": "\#($0.1)"}"# }
        try (lines.joined(separator: "\n") + "\n").write(toFile: directory + "/fit.jsonl", atomically: true, encoding: .utf8)
        let out = directory + "/home-v1"
        let first = try Self.run([
            "train", "--model", Harness.modelDirectory, "--examples", directory + "/fit.jsonl", "--eval", directory + "/fit.jsonl",
            "--out", out, "--epochs", "3", "--batch", "3", "--rank", "4", "--json",
        ], in: directory)
        #expect(first.code == 0, "\(first.output)")
        let figures = try #require(try JSONSerialization.jsonObject(with: Data(first.output.utf8)) as? [String: Any], "not one JSON object: \(first.output)")
        #expect(figures["steps"] as? Int == 6 && figures["labels"] as? Int == 2 && figures["evalAccuracy"] is Double)
        let adapter = try LoRAAdapter(directory: out, model: try BertModel(directory: Harness.modelDirectory), name: "home")
        #expect(adapter.labels == ["lights", "alarm"] && adapter.maxRank == 4)

        let more = try Self.run([
            "train", "--model", Harness.modelDirectory, "--examples", directory + "/fit.jsonl", "--from", out, "--out", directory + "/home-v2",
            "--epochs", "1", "--batch", "3",
        ], in: directory)
        #expect(more.code == 0 && more.output.contains("r 4"), "\(more.output)")

        try "{\"text\": \"no label\"}\n".write(toFile: directory + "/bad.jsonl", atomically: true, encoding: .utf8)
        let bad = try Self.run(["train", "--model", Harness.modelDirectory, "--examples", directory + "/bad.jsonl", "--out", directory + "/x"], in: directory)
        #expect(bad.code == 2)
        #expect(!FileManager.default.fileExists(atPath: directory + "/x"), "nothing written for bad examples")
    }
}
