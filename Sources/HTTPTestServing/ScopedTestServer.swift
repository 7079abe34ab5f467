// ScopedTestServer.swift: a test double that runs for the duration of a closure: started before it, stopped after
// it whether it returned or threw. The one `withRunning` the Pyroscope and Grafana doubles share.

/// A test double that can be started on a free port and stopped.
public protocol ScopedTestServer: Sendable {
    /// Starts serving on a free port of 127.0.0.1.
    func startOnFreePort() async throws
    /// Closes the socket and every connection.
    func stop() async
}

extension ScopedTestServer {
    /// Starts this server, runs `body` with it, then stops it, also when `body` throws.
    public func whileRunning<Result>(_ body: (Self) async throws -> Result) async throws -> Result {
        try await self.startOnFreePort()
        do {
            let result = try await body(self)
            await self.stop()
            return result
        } catch {
            await self.stop()
            throw error
        }
    }
}
