// pyroscope-test-server: runs the Pyroscope ingestion double until SIGINT/SIGTERM, for benchmarks.
//
// Prints `listening on HOST:PORT` once bound (port 0 picks a free port); on SIGINT/SIGTERM writes the summary
// (request counts by status, accepted series and samples) to --summary-json, then exits 0.

import ArgumentParser
import Foundation
import HTTPTestServing
import Logging
import PyroscopeTestServer

@main
struct PyroscopeTestServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pyroscope-test-server",
        abstract: "A test double of Grafana Pyroscope's ingestion API (push and legacy ingest), with its validation."
    )

    @Option(help: "The address to bind.")
    var host = "127.0.0.1"

    @Option(help: "The port to bind; 0 picks a free port.")
    var port = 0

    @Option(name: .customLong("require-bearer-token"), help: "Require `Authorization: Bearer` with the token in FILE.")
    var bearerTokenFile: String?

    @Option(help: "Answer the first --fail-count ingestion requests with this HTTP status.")
    var failStatus: Int?

    @Option(help: "How many requests --fail-status applies to.")
    var failCount = 1

    @Option(name: .customLong("summary-json"), help: "Write a JSON summary to PATH on SIGINT/SIGTERM.")
    var summaryJSON: String?

    @Option(help: "Keep only the newest N decoded series in memory (totals count them all).")
    var maxRetainedSeries = 100

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "warning"

    func run() async throws {
        var logger = Logger(label: "pyroscope-test-server")
        logger.logLevel = Logger.Level(rawValue: self.logLevel) ?? .warning
        let server = PyroscopeTestServer(logger: logger)
        server.maxRetainedSeries = self.maxRetainedSeries
        if let file = self.bearerTokenFile {
            let token = try String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(
                in: .whitespacesAndNewlines
            )
            guard !token.isEmpty else { throw ValidationError("the bearer token file \(file) is empty") }
            server.authentication = .bearer(token: token)
        }
        if let status = self.failStatus { server.failNext(count: self.failCount, status: status) }

        // Caught from here on: the default handlers would exit without the summary.
        let signals = TerminationSignals()

        let boundPort = try await server.start(host: self.host, port: self.port)
        FileHandle.standardOutput.write(Data("listening on \(self.host):\(boundPort)\n".utf8))

        await signals.wait()
        if let path = self.summaryJSON {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(server.summary()).write(to: URL(fileURLWithPath: path), options: .atomic)
        }
        await server.stop()
    }
}
