import Foundation

/// What PyTorch computed for one encoder-zoo family (`Fixtures/encoder-zoo/{family}.json`): the base model's ids and
/// embeddings per text, and each adapter's outputs per text (logits and labels, or token logits).
struct ZooFamilyReference: Decodable {
    struct Case: Decodable {
        let text: String
        let ids: [Int32]
        let embedding: [Float]
    }

    struct AdapterCase: Decodable {
        let text: String
        let ids: [Int32]
        let logits: [Float]?
        let label: String?
        let labelsOn: [String]?
        let tokenLogits: [[Float]]?
    }

    struct Adapter: Decodable {
        let name: String
        let labels: [String]
        let problemType: String?
        let cases: [AdapterCase]
    }

    let tolerance: Float
    let cases: [Case]
    let adapters: [Adapter]

    /// The reference of `family`.
    static func load(_ family: String) -> ZooFamilyReference {
        let path = EncoderFamilyTests.zoo + "/\(family).json"
        return try! JSONDecoder().decode(ZooFamilyReference.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    }
}
