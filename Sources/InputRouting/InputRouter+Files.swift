import AdapterEngine
import Foundation

extension InputRouter {
    /// `router.json` as written.
    struct Document: Codable {
        static let currentFormat = "adapterd-router/1"

        var format: String
        var kind: String
        var labels: [String]
        var baseFingerprint: String
        var stages: [StageDocument]
        var fit: FitSummary

        enum CodingKeys: String, CodingKey {
            case format, kind, labels, stages, fit
            case baseFingerprint = "base_fingerprint"
        }
    }

    struct StageDocument: Codable {
        var features: RouterStage.Features
        var threshold: Float
        var classifier: String
    }

    /// Reads the router in `directory`, checking every tensor's shape against the description.
    public init(directory: String) throws(RouterError) {
        let jsonPath = directory + "/router.json"
        guard let data = FileManager.default.contents(atPath: jsonPath) else { throw .unreadable(path: jsonPath, reason: "no such file") }
        let document: Document
        do {
            document = try JSONDecoder().decode(Document.self, from: data)
        } catch {
            throw .invalidRouter(path: directory, reason: "router.json does not parse: \(error)")
        }
        guard document.format == Document.currentFormat else {
            throw .invalidRouter(path: directory, reason: "format '\(document.format)' is not \(Document.currentFormat)")
        }
        guard document.labels.count >= 2, Set(document.labels).count == document.labels.count else {
            throw .invalidRouter(path: directory, reason: "it needs at least two distinct labels")
        }
        guard !document.stages.isEmpty else { throw .invalidRouter(path: directory, reason: "it has no stages") }
        let tensors: SafeTensorsFile
        do {
            tensors = try SafeTensorsFile(path: directory + "/router.safetensors")
        } catch {
            throw .invalidRouter(path: directory, reason: "router.safetensors: \(error)")
        }
        var stages: [RouterStage] = []
        for (index, stage) in document.stages.enumerated() {
            guard stage.classifier == "softmax-regression" else {
                throw .invalidRouter(path: directory, reason: "stage \(index): unknown classifier '\(stage.classifier)'")
            }
            guard (0...64).contains(stage.features.layers), (2...4096).contains(stage.features.maxTokens),
                  stage.threshold.isFinite, (0...1).contains(stage.threshold) else {
                throw .invalidRouter(path: directory, reason: "stage \(index): layers, max_tokens or threshold out of range")
            }
            func tensor(_ name: String) throws(RouterError) -> (shape: [Int], values: [Float]) {
                do {
                    let loaded = try tensors.tensor("stages.\(index).\(name)")
                    let values = loaded.storage.values
                    guard values.allSatisfy(\.isFinite) else { throw RouterError.invalidRouter(path: directory, reason: "stages.\(index).\(name) holds non-finite values") }
                    return (loaded.shape, values)
                } catch let error as RouterError {
                    throw error
                } catch {
                    throw .invalidRouter(path: directory, reason: "stages.\(index).\(name): \(error)")
                }
            }
            let mean = try tensor("mean"), scale = try tensor("scale"), weight = try tensor("weight"), bias = try tensor("bias")
            let dimensions = mean.values.count
            guard mean.shape == [dimensions], scale.shape == [dimensions], weight.shape == [document.labels.count, dimensions],
                  bias.shape == [document.labels.count], scale.values.allSatisfy({ $0.isNormal && $0 > 0 }) else {
                throw .invalidRouter(path: directory, reason: "stage \(index): tensor shapes do not match \(document.labels.count) labels")
            }
            stages.append(RouterStage(
                features: stage.features, threshold: stage.threshold, mean: mean.values, scale: scale.values,
                weight: weight.values, bias: bias.values))
        }
        self.init(labels: document.labels, stages: stages, baseFingerprint: document.baseFingerprint, fit: document.fit)
    }

    /// Checks the router against `model`: feature widths and depths it can compute, and the same base weights.
    public func validate(for model: BertModel, fingerprint: String) throws(RouterError) {
        guard baseFingerprint == fingerprint else { throw .wrongBaseModel(router: baseFingerprint, worker: fingerprint) }
        for (index, stage) in stages.enumerated() {
            guard stage.dimensions == model.config.hiddenSize, stage.features.layers <= model.config.numHiddenLayers else {
                throw .invalidRouter(path: "", reason: "stage \(index) expects \(stage.dimensions) features after \(stage.features.layers) layers; the model has \(model.config.hiddenSize) after up to \(model.config.numHiddenLayers)")
            }
        }
    }

    /// Writes `router.json` and `router.safetensors` into `directory` (created if needed).
    public func write(to directory: String, kind: String) throws(RouterError) {
        let document = Document(
            format: Document.currentFormat, kind: kind, labels: labels, baseFingerprint: baseFingerprint,
            stages: stages.map { StageDocument(features: $0.features, threshold: $0.threshold, classifier: "softmax-regression") },
            fit: fit)
        var writer = SafeTensorsWriter()
        writer.metadata = ["format": Document.currentFormat]
        for (index, stage) in stages.enumerated() {
            writer.add("stages.\(index).mean", shape: [stage.dimensions], values: stage.mean)
            writer.add("stages.\(index).scale", shape: [stage.dimensions], values: stage.scale)
            writer.add("stages.\(index).weight", shape: [labels.count, stage.dimensions], values: stage.weight)
            writer.add("stages.\(index).bias", shape: [labels.count], values: stage.bias)
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(document).write(to: URL(fileURLWithPath: directory + "/router.json"))
            try writer.data().write(to: URL(fileURLWithPath: directory + "/router.safetensors"))
        } catch {
            throw .unreadable(path: directory, reason: "cannot write: \(error.localizedDescription)")
        }
    }
}
