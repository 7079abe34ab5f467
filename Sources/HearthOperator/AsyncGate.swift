// AsyncGate.swift: a FIFO async mutex, so one agent sync runs at a time while other reconciles wait for it.

import Synchronization

/// Admits one task at a time, in arrival order.
final class AsyncGate: Sendable {
    struct State {
        var locked = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    let state = Mutex(State())

    func lock() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let acquired = self.state.withLock { state -> Bool in
                if !state.locked {
                    state.locked = true
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if acquired { continuation.resume() }
        }
    }

    func unlock() {
        let next = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiters.isEmpty {
                state.locked = false
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }

    func withLock<Result: Sendable>(_ body: () async throws -> Result) async throws -> Result {
        await self.lock()
        defer { self.unlock() }
        return try await body()
    }
}
