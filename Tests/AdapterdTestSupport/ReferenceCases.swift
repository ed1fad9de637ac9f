import Foundation

/// The layout of `cases.json`.
public struct ReferenceCases: Decodable, Sendable {
    public struct TokenizerCase: Decodable, Sendable {
        public let text: String
        public let input_ids: [Int32]
    }
    public struct AdapterCase: Decodable, Sendable {
        public let text: String
        public let logits: [Float]
        public let label: String
    }
    public struct Adapter: Decodable, Sendable {
        public let name: String
        public let labels: [String]
        public let cases: [AdapterCase]
    }
    public struct EmbeddingCase: Decodable, Sendable {
        public let text: String
        public let embedding: [Float]
    }
    public let model: String
    public let max_length: Int
    public let tokenizer: [TokenizerCase]
    public let adapters: [Adapter]
    public let embeddings: [EmbeddingCase]
}

extension ReferenceCases {
    /// What PyTorch+PEFT computed for the shared reference adapters (`Fixtures/minilm-lora/cases.json`).
    public static let minilmLoRA: ReferenceCases = {
        let data = try! Data(contentsOf: URL(fileURLWithPath: Harness.referenceDirectory + "/cases.json"))
        return try! JSONDecoder().decode(ReferenceCases.self, from: data)
    }()
}
