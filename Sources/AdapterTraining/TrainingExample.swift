import Foundation

/// One labelled text: a line `{"text": "…", "label": "…"}` of an examples file.
public struct TrainingExample: Sendable, Equatable, Codable {
    public var text: String
    public var label: String

    /// An example.
    public init(text: String, label: String) {
        self.text = text
        self.label = label
    }

    /// Reads a JSON Lines file of examples; blank lines are skipped. A line that is not an example is an error
    /// naming it.
    public static func read(jsonl path: String) throws(TrainingError) -> [TrainingExample] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .unreadable(path: path, reason: error.localizedDescription)
        }
        return try parse(jsonl: data, source: path)
    }

    /// Parses JSON Lines bytes (`source` names them in errors).
    public static func parse(jsonl data: Data, source: String) throws(TrainingError) -> [TrainingExample] {
        var examples: [TrainingExample] = []
        for (index, line) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            guard line.contains(where: { !($0 == 0x20 || $0 == 0x09 || $0 == 0x0D) }) else { continue }
            do {
                let example = try JSONDecoder().decode(TrainingExample.self, from: Data(line))
                guard !example.label.isEmpty else { throw TrainingError.invalidExamples(path: source, line: index + 1, reason: "the label is empty") }
                examples.append(example)
            } catch let error as TrainingError {
                throw error
            } catch {
                throw .invalidExamples(path: source, line: index + 1, reason: "not an example (\(error))")
            }
        }
        return examples
    }
}
