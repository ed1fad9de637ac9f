import AdapterdCore
import AdapterdTestSupport
import AdapterEngine
import Foundation
import Testing

/// `adapterctl run` on every kernel path this machine supports, one process each: the GEMMs' instruction-set
/// ceiling is process-wide, so only a process per path runs oneDNN's AVX2, AVX-512 and VNNI kernels for real.
@Suite("Kernel paths in their own processes")
struct KernelPathProcessTests {
    static let binary = Harness.root + "/.build/debug/adapterctl"

    struct Line: Decodable {
        let text: String
        let label: String
        let logits: [Float]
    }

    static let intent = ReferenceCases.minilmLoRA.adapters.first { $0.name == "intent" }!

    /// Runs `adapterctl run --json --verbose` on the intent adapter's reference texts; its output lines.
    static func run(path: KernelPath, precision: Precision) throws -> (verbose: String, lines: [Line]) {
        let output = NSTemporaryDirectory() + "adapterctl-\(path)-\(precision)-\(UUID().uuidString.prefix(6)).out"
        defer { try? FileManager.default.removeItem(atPath: output) }
        let pid = try ChildProcess.spawn(binary, arguments: [
            "run", "--model", Harness.modelDirectory, "--adapter", Harness.adapterDirectory("intent"), "--json", "--verbose",
            "--cpu-path", path.description, "--precision", precision.rawValue,
        ] + intent.cases.map(\.text), output: output)
        guard let code = ChildProcess.wait(pid, timeout: .seconds(120)) else {
            _ = ChildProcess.terminate(pid, within: .seconds(5))
            throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "adapterctl run on \(path) did not finish in 120 s"])
        }
        let text = try String(contentsOfFile: output, encoding: .utf8)
        #expect(code == 0, "adapterctl run on \(path)/\(precision) exited \(code): \(text)")
        let lines = text.split(separator: "\n")
        let verbose = lines.first { $0.hasPrefix("adapterctl:") }.map(String.init) ?? ""
        let decoded = try lines.filter { $0.hasPrefix("{") }.map { try JSONDecoder().decode(Line.self, from: Data($0.utf8)) }
        return (verbose, decoded)
    }

    @Test("FP32 on every supported path, GEMMs included, matches PyTorch+PEFT within 1e-4", arguments: KernelPath.supported)
    func fp32MatchesReference(path: KernelPath) throws {
        let (verbose, lines) = try Self.run(path: path, precision: .fp32)
        #expect(verbose.contains("kernels \(path),") && verbose.contains("gemm path \(path),"), "\(verbose)")
        #expect(lines.count == Self.intent.cases.count)
        for (expected, line) in zip(Self.intent.cases, lines) {
            #expect(Harness.maxAbsDiff(line.logits, expected.logits) < 1e-4, "\(path): \(expected.text)")
            #expect(line.label == expected.label)
        }
    }

    @Test("INT8 on every supported path keeps the reference labels, with the weight range its GEMM allows", arguments: KernelPath.supported)
    func int8KeepsLabels(path: KernelPath) throws {
        let (verbose, lines) = try Self.run(path: path, precision: .int8)
        // VNNI and AMX dot products hold 255 · 127 pair sums; vpmaddubsw (AVX2, AVX-512 without VNNI, SSE) saturates
        // them, so the weights get 7 bits there.
        let range = [.amx, .avx512BF16, .avx512VNNI, .avx2VNNI].contains(path) ? "±127" : "±63"
        #expect(verbose.contains("int8 weights \(range)"), "\(verbose)")
        #expect(lines.count == Self.intent.cases.count)
        for (expected, line) in zip(Self.intent.cases, lines) {
            #expect(line.label == expected.label, "\(path): \(expected.text)")
            #expect(Harness.maxAbsDiff(line.logits, expected.logits) < 0.25, "\(path): \(expected.text)")
        }
    }
}
