import Foundation

/// How a sequence's token rows become its sentence embedding, as the model's sentence-transformers layout declares
/// it (`modules.json`, the Pooling module's `config.json`, a Normalize module): a bge/gte/e5-style checkpoint takes
/// the [CLS] row, all-MiniLM-L6-v2 the mean. A model directory without that layout gets the mean, normalised.
public struct SentencePooling: Sendable, Equatable {
    /// Which rows, combined how.
    public enum Mode: String, Sendable, Equatable {
        /// The first row ([CLS]).
        case cls
        /// The mean of every row.
        case mean
        /// The element-wise maximum of every row.
        case max
        /// The sum of every row over the square root of their count.
        case meanSqrtLength = "mean_sqrt_len"
        /// The mean weighted by position (1 for the first row … n for the last), as sentence-transformers'
        /// `weightedmean`.
        case weightedMean = "weightedmean"
        /// The last row (the closing special token), as sentence-transformers' `lasttoken`.
        case lastToken = "lasttoken"
    }

    public var mode: Mode
    /// Whether the result is L2-normalised (a Normalize module follows the pooling).
    public var normalize: Bool

    /// A pooling of `mode`, normalised when `normalize`.
    public init(mode: Mode, normalize: Bool) {
        self.mode = mode
        self.normalize = normalize
    }

    /// The mean, normalised: all-MiniLM-L6-v2's, and what a directory without `modules.json` gets.
    public static let meanNormalized = SentencePooling(mode: .mean, normalize: true)

    /// Reads the pooling `modelDirectory`'s sentence-transformers modules declare; refuses a pooling it cannot run
    /// (several modes at once, prompts left out) rather than pool another way.
    public init(modelDirectory: String) throws(ModelError) {
        let modulesPath = modelDirectory + "/modules.json"
        guard let modulesData = FileManager.default.contents(atPath: modulesPath) else {
            self = .meanNormalized
            return
        }
        struct Module: Decodable {
            let path: String
            let type: String
        }
        let modules: [Module]
        do {
            modules = try JSONDecoder().decode([Module].self, from: modulesData)
        } catch {
            throw .invalidConfig(file: modulesPath, reason: "not a list of sentence-transformers modules: \(error)")
        }
        let normalize = modules.contains { $0.type.hasSuffix(".Normalize") }
        guard let pooling = modules.first(where: { $0.type.hasSuffix(".Pooling") }) else {
            throw .invalidConfig(file: modulesPath, reason: "no Pooling module: the sentence embedding is undefined")
        }
        let configPath = modelDirectory + "/" + pooling.path + "/config.json"
        let flags: [String: Any]
        do {
            flags = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath))) as? [String: Any] ?? [:]
        } catch {
            throw .invalidConfig(file: configPath, reason: "cannot read the pooling configuration: \(error)")
        }
        let on = flags.filter { $0.key.hasPrefix("pooling_mode_") && ($0.value as? Bool) == true }.map { String($0.key.dropFirst("pooling_mode_".count)) }
        let modes: [String: Mode] = [
            "cls_token": .cls, "mean_tokens": .mean, "max_tokens": .max, "mean_sqrt_len_tokens": .meanSqrtLength,
            "weightedmean_tokens": .weightedMean, "lasttoken": .lastToken,
        ]
        guard on.count == 1, let mode = modes[on[0]] else {
            throw .unsupported(file: configPath, field: "pooling_mode", value: on.isEmpty ? "none" : on.sorted().joined(separator: " + "))
        }
        if let includePrompt = flags["include_prompt"] as? Bool, !includePrompt {
            throw .unsupported(file: configPath, field: "include_prompt", value: "false")
        }
        self.init(mode: mode, normalize: normalize)
    }

    /// The sentence embedding of `length` rows of width `width` starting at `rows`.
    public func pool(_ rows: UnsafePointer<Float>, length: Int, width: Int) -> [Float] {
        var pooled = [Double](repeating: mode == .max ? -.infinity : 0, count: width)
        switch mode {
        case .cls:
            for i in 0..<width { pooled[i] = Double(rows[i]) }
        case .lastToken:
            let last = rows + Swift.max(length - 1, 0) * width
            for i in 0..<width { pooled[i] = Double(last[i]) }
        case .weightedMean:
            for row in 0..<length {
                for i in 0..<width { pooled[i] += Double(row + 1) * Double(rows[row * width + i]) }
            }
            let total = Double(length * (length + 1) / 2)
            for i in 0..<width { pooled[i] /= Swift.max(total, 1) }
        case .max:
            for row in 0..<length {
                for i in 0..<width { pooled[i] = Swift.max(pooled[i], Double(rows[row * width + i])) }
            }
        case .mean, .meanSqrtLength:
            for row in 0..<length {
                for i in 0..<width { pooled[i] += Double(rows[row * width + i]) }
            }
            let divisor = mode == .mean ? Double(Swift.max(length, 1)) : Double(Swift.max(length, 1)).squareRoot()
            for i in 0..<width { pooled[i] /= divisor }
        }
        guard normalize else { return pooled.map { Float($0) } }
        let norm = Swift.max(pooled.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-12)
        return pooled.map { Float($0 / norm) }
    }
}
