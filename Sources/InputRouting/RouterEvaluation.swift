import AdapterEngine

/// How a router does on labelled texts: accuracy, the share its cheap stage passed on, and a confusion table.
public struct RouterEvaluation: Sendable {
    public let labels: [String]
    /// `confusion[expected][chosen]` counts, in `labels` order (texts naming an adapter the router does not
    /// know count as errors under an extra last row).
    public let confusion: [[Int]]
    public let accuracy: Double
    public let escalationRate: Double
    public let count: Int

    /// Routes every example with `engine` and compares.
    public init(router: InputRouter, examples: [RoutingExample], engine: InferenceEngine) async throws {
        let decisions = try await router.route(examples.map(\.text), engine: engine)
        labels = router.labels
        var table = [[Int]](repeating: [Int](repeating: 0, count: labels.count), count: labels.count + 1)
        var correct = 0
        for (example, decision) in zip(examples, decisions) {
            let row = labels.firstIndex(of: example.adapter) ?? labels.count
            table[row][labels.firstIndex(of: decision.adapter)!] += 1
            if example.adapter == decision.adapter { correct += 1 }
        }
        confusion = table
        count = examples.count
        accuracy = examples.isEmpty ? 0 : Double(correct) / Double(examples.count)
        escalationRate = examples.isEmpty ? 0 : Double(decisions.filter { $0.stage > 0 }.count) / Double(examples.count)
    }

    /// Accuracy, errors and escalations in one line.
    public var summary: String {
        let wrong = count - Int((accuracy * Double(count)).rounded())
        return String(format: "accuracy %.3f on %d examples (%d wrong), %.1f%% escalated", accuracy, count, wrong, escalationRate * 100)
    }

    /// The confusion table as text: expected adapters down, chosen across.
    public var table: String {
        let rowNames = labels + (confusion.last!.reduce(0, +) > 0 ? ["(unknown)"] : [])
        let width = max(9, (rowNames.map(\.count).max() ?? 0) + 1)
        func pad(_ text: String, _ size: Int) -> String { String(repeating: " ", count: max(0, size - text.count)) + text }
        var lines = [pad("expected", width) + " " + labels.map { pad(String($0.prefix(9)), 9) }.joined(separator: " ")]
        for (index, name) in rowNames.enumerated() {
            lines.append(pad(name, width) + " " + confusion[index].map { pad(String($0), 9) }.joined(separator: " "))
        }
        return lines.joined(separator: "\n")
    }
}
