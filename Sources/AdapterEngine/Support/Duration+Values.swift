extension Duration {
    /// This duration in seconds, as a floating-point number (for rates and figures in documents).
    public var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }

    /// This duration in milliseconds, as a floating-point number (for latencies in replies and metrics).
    public var inMilliseconds: Double {
        Double(components.seconds) * 1e3 + Double(components.attoseconds) / 1e15
    }
}
