/// ModernBERT's rotary position embeddings for its two attention kinds, `[positions, headSize]` cos and sin tables
/// each, made once per plan so that no pass spends its time on trigonometry.
struct RotaryTables: Sendable {
    /// Positions the tables cover.
    let positions: Int
    let global: (cos: [Float], sin: [Float])
    let local: (cos: [Float], sin: [Float])

    /// The tables of `layout`'s two bases over `positions` positions.
    init(layout: ModernBertLayout, headSize: Int, positions: Int) {
        self.positions = positions
        global = ModernBertLayout.rotaryTables(theta: layout.globalRopeTheta, headSize: headSize, positions: positions)
        local = ModernBertLayout.rotaryTables(theta: layout.localRopeTheta, headSize: headSize, positions: positions)
    }

    /// Positions a plan prepares: sequences longer than this (a worker configured past 512 tokens) get tables made
    /// for their pass.
    static let preparedPositions = 512
}
