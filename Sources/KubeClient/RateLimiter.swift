// RateLimiter.swift: client-side QPS and burst (token bucket), like client-go's flowcontrol.

import HearthBase
import Synchronization

/// A token bucket: `burst` tokens, refilled at `qps` per second. Callers reserve a token and wait for it.
public final class RateLimiter: Sendable {
    struct State {
        var tokens: Double
        var last: ContinuousClock.Instant
    }

    public let qps: Double
    public let burst: Int
    private let state: Mutex<State>

    public init(qps: Double, burst: Int) {
        self.qps = qps
        self.burst = max(1, burst)
        self.state = Mutex(State(tokens: Double(max(1, burst)), last: .now))
    }

    /// Reserves one token and returns how long the caller must wait before using it.
    public func reserve(now: ContinuousClock.Instant = .now) -> Duration {
        guard self.qps > 0 else { return .zero }
        return self.state.withLock { state in
            let elapsed = now - state.last
            let seconds = elapsed.seconds
            state.tokens = min(Double(self.burst), state.tokens + max(0, seconds) * self.qps)
            state.last = now
            state.tokens -= 1
            if state.tokens >= 0 { return .zero }
            return .seconds(-state.tokens / self.qps)
        }
    }

    /// Waits for a token.
    public func acquire() async throws {
        let wait = self.reserve()
        if wait > .zero { try await Task.sleep(for: wait) }
    }
}
