// TerminationSignals.swift: SIGINT and SIGTERM as an awaitable event for the test-double executables, which
// must finish their work (a summary, a clean stop) instead of dying with the default handlers.

import Dispatch
import Foundation

/// Catches SIGINT and SIGTERM from creation on (create it before starting work, so no signal is missed).
public final class TerminationSignals {
    private let signals: AsyncStream<Int32>
    private let sources: [any DispatchSourceSignal]

    public init() {
        let (signals, continuation) = AsyncStream.makeStream(of: Int32.self)
        var sources: [any DispatchSourceSignal] = []
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { continuation.yield(number) }
            source.resume()
            sources.append(source)
        }
        self.signals = signals
        self.sources = sources
    }

    /// Returns at the first signal (at once when one already came).
    public func wait() async {
        for await _ in self.signals { break }
    }
}
