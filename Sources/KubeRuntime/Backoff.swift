// Backoff.swift: exponential backoff with jitter that resets after a healthy period (client-go's
// NewExponentialBackoffManager(800ms, 30s, 2min, 2.0, 1.0); kube-rs DefaultBackoff).

/// Exponential backoff: `initial`, doubling up to `maximum`, with jitter; after `resetAfter` without a failure
/// the next delay starts from `initial` again.
public struct Backoff: Sendable {
    public var initial: Duration
    public var maximum: Duration
    public var factor: Double
    /// Fraction of random extra delay (1.0 adds up to 100%), capped at `maximum`.
    public var jitter: Double
    public var resetAfter: Duration

    var current: Duration?
    var lastFailure: ContinuousClock.Instant?

    public init(
        initial: Duration = .milliseconds(800),
        maximum: Duration = .seconds(30),
        factor: Double = 2,
        jitter: Double = 1.0,
        resetAfter: Duration = .seconds(120)
    ) {
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self.resetAfter = resetAfter
    }

    /// The delay before the next attempt after a failure.
    public mutating func next(now: ContinuousClock.Instant = .now) -> Duration {
        if let lastFailure, now - lastFailure >= self.resetAfter { self.current = nil }
        self.lastFailure = now
        let base: Duration
        if let current { base = min(self.maximum, current * self.factor) } else { base = self.initial }
        self.current = base
        let extra = base * Double.random(in: 0...max(0, self.jitter))
        return min(self.maximum, base + extra)
    }

    /// Forgets earlier failures.
    public mutating func reset() {
        self.current = nil
        self.lastFailure = nil
    }

    /// The number of failures since the last reset is unknown to callers; this reports whether any happened.
    public var isBackingOff: Bool { self.current != nil }
}
