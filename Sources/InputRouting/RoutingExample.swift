import Foundation

/// One labelled request text: which adapter should serve it.
public struct RoutingExample: Codable, Sendable, Equatable {
    public var text: String
    public var adapter: String

    public init(text: String, adapter: String) {
        self.text = text
        self.adapter = adapter
    }

    /// The examples of a JSON Lines file (`{"text": …, "adapter": …}` per line; blank lines skipped).
    public static func read(jsonl path: String) throws(RouterError) -> [RoutingExample] {
        guard let data = FileManager.default.contents(atPath: path) else { throw .unreadable(path: path, reason: "no such file") }
        var examples: [RoutingExample] = []
        for (index, line) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            guard line.contains(where: { !Set(" \t\r".utf8).contains($0) }) else { continue }
            do {
                let example = try JSONDecoder().decode(RoutingExample.self, from: Data(line))
                guard !example.adapter.isEmpty else { throw RouterError.invalidExample(path: path, line: index + 1, reason: "'adapter' is empty") }
                examples.append(example)
            } catch let error as RouterError {
                throw error
            } catch {
                throw .invalidExample(path: path, line: index + 1, reason: "expected {\"text\": …, \"adapter\": …}")
            }
        }
        return examples
    }
}
