// Duration+Units.swift: a Duration as the numbers other APIs take (seconds for Foundation and metrics,
// nanoseconds for NIO and clocks, milliseconds for poll(2)), in one place instead of at every call.

extension Duration {
    /// The duration in seconds, as a floating-point number.
    public var seconds: Double {
        let (seconds, attoseconds) = self.components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// The duration in whole nanoseconds, truncated toward zero, saturating at the bounds of `Int64`.
    public var nanoseconds: Int64 { self.whole(unitAttoseconds: 1_000_000_000, perSecond: 1_000_000_000) }

    /// The duration in whole milliseconds, truncated toward zero, saturating at the bounds of `Int64`.
    public var milliseconds: Int64 { self.whole(unitAttoseconds: 1_000_000_000_000_000, perSecond: 1000) }

    private func whole(unitAttoseconds: Int64, perSecond: Int64) -> Int64 {
        let (seconds, attoseconds) = self.components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: perSecond)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, sumOverflow) = scaled.addingReportingOverflow(attoseconds / unitAttoseconds)
        if sumOverflow { return seconds < 0 ? .min : .max }
        return sum
    }
}
