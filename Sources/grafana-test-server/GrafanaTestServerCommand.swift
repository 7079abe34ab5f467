// grafana-test-server: runs the Grafana datasource API double until SIGINT/SIGTERM, for the packaging checks
// (the operator image provisioning a datasource). Prints `listening on HOST:PORT` once bound.

import ArgumentParser
import Dispatch
import Foundation
import GrafanaTestServer
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
        let (signals, continuation) = AsyncStream.makeStream(of: Int32.self)
        var sources: [any DispatchSourceSignal] = []
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { continuation.yield(number) }
            source.resume()
            sources.append(source)
        }
        let boundPort = try await server.start(host: self.host, port: self.port)
        FileHandle.standardOutput.write(Data("listening on \(self.host):\(boundPort)\n".utf8))
        for await _ in signals { break }
        withExtendedLifetime(sources) {}
        await server.stop()
    }
}
