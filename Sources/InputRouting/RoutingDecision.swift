/// What an input router chose for one text.
public struct RoutingDecision: Sendable, Equatable {
    /// The adapter the router picked.
    public let adapter: String
    /// The picking stage's probability for it (0…1).
    public let confidence: Float
    /// Which stage answered (0: the cheapest); later stages run only when earlier ones are unsure.
    public let stage: Int

    public init(adapter: String, confidence: Float, stage: Int) {
        self.adapter = adapter
        self.confidence = confidence
        self.stage = stage
    }
}
