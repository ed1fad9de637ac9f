/// How much labelled feedback a worker keeps: per name (the oldest go first), and in all (refused past it).
public struct FeedbackLimits: Sendable, Equatable {
    /// Texts kept per name; beyond it the oldest go.
    public var perName: Int
    /// Bytes of text and label kept over all names.
    public var maxBytes: Int
    /// Names that hold feedback.
    public var maxNames: Int

    /// Limits with the worker's defaults: 10,000 texts a name, 64 MiB and 256 names in all.
    public init(perName: Int = 10_000, maxBytes: Int = 64 << 20, maxNames: Int = 256) {
        self.perName = perName
        self.maxBytes = maxBytes
        self.maxNames = maxNames
    }
}
