import AdapterEngine
import AdapterdTestSupport
import Foundation

/// Paths and reference data shared by the engine tests.
enum Fixtures {
    /// The package root, found from this file's location.
    static let root: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// The reference data PyTorch+PEFT produced (copied from shared/reference/minilm-lora).
    static let referenceDirectory = root + "/Tests/AdapterEngineTests/Fixtures/minilm-lora"

    /// all-MiniLM-L6-v2, as `scripts/fetch-model` installs it (or `ADAPTERD_MODEL_DIR`).
    static let modelDirectory = ProcessInfo.processInfo.environment["ADAPTERD_MODEL_DIR"] ?? root + "/models/all-MiniLM-L6-v2"

    static func adapterDirectory(_ name: String) -> String { referenceDirectory + "/adapters/" + name }

    static let cases = ReferenceCases.minilmLoRA

    /// Loaded once: the model is ~90 MB of mapped weights.
    static let model: BertModel = {
        do {
            return try BertModel(directory: modelDirectory)
        } catch {
            fatalError("cannot load the base model from \(modelDirectory) (run scripts/fetch-model): \(error)")
        }
    }()

    static let engine = InferenceEngine(model: model)

    static func adapter(_ name: String) throws -> LoRAAdapter {
        try LoRAAdapter(directory: adapterDirectory(name), model: model)
    }

    /// A fresh temporary directory.
    static func temporaryDirectory() -> String {
        let path = NSTemporaryDirectory() + "adapterd-tests-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Largest absolute element-wise difference.
    static func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count, "lengths differ: \(a.count) vs \(b.count)")
        return zip(a, b).map { abs($0 - $1) }.max() ?? 0
    }
}
