// RetryOnConflict.swift: re-read-and-retry for optimistic concurrency (client-go retry.DefaultRetry:
// 5 steps, 10 ms, factor 1.0, jitter 0.1).

/// Runs `body` again while it fails with a 409 ``KubeError/Code/conflict``, up to `attempts` times, waiting `delay`
/// (plus up to 10% jitter) in between. `body` must re-read the object each time.
public func retryOnConflict<Result: Sendable>(
    attempts: Int = 5,
    delay: Duration = .milliseconds(10),
    _ body: () async throws -> Result
) async throws -> Result {
    var attempt = 1
    while true {
        do {
            return try await body()
        } catch let error as KubeError where error.code == .conflict && error.causes.isEmpty && attempt < attempts {
            attempt += 1
            try await Task.sleep(for: delay * Double.random(in: 1.0...1.1))
        }
    }
}
