// grafana-test-server: runs the Grafana datasource API double until SIGINT/SIGTERM, for the packaging checks
// (the operator image provisioning a datasource). Prints `listening on HOST:PORT` once bound.

import ArgumentParser
import Foundation
import GrafanaTestServer
import HTTPTestServing
import Logging

@main
struct GrafanaTestServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grafana-test-server",
        abstract: "A test double of Grafana's datasource HTTP API, with its status codes and version semantics."
    )

    @Option(help: "The address to bind.")
    var host = "127.0.0.1"

    @Option(help: "The port to bind; 0 picks a free port.")
    var port = 0

    @Option(help: "Accept `Authorization: Bearer TOKEN` (repeatable); without one, any request is accepted.")
    var token: [String] = []

    func run() async throws {
        var logger = Logger(label: "grafana-test-server")
        logger.logLevel = .warning
        let server = GrafanaTestServer(authentication: self.token.map { .token($0) }, logger: logger)
        let signals = TerminationSignals()
        let boundPort = try await server.start(host: self.host, port: self.port)
        FileHandle.standardOutput.write(Data("listening on \(self.host):\(boundPort)\n".utf8))
        await signals.wait()
        await server.stop()
    }
}
