// kube-test-server: runs the in-memory Kubernetes API server until SIGINT/SIGTERM.
//
// Usage: kube-test-server [--port N] [--host ADDRESS] [--bookmark-interval SECONDS]
// Prints `kube-test-server listening on http://HOST:PORT` once bound (port 0 picks a free port).

import Foundation
import KubeTestServer
import Logging

var configuration = KubeTestServer.Configuration()
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--port": configuration.port = Int(arguments.popFirst() ?? "") ?? 0
    case "--host": configuration.host = arguments.popFirst() ?? "127.0.0.1"
    case "--bookmark-interval":
        configuration.bookmarkInterval = .seconds(Double(arguments.popFirst() ?? "") ?? 1)
    case "-h", "--help":
        print("usage: kube-test-server [--port N] [--host ADDRESS] [--bookmark-interval SECONDS]")
        exit(0)
    default:
        print("kube-test-server: unknown argument \(argument)")
        exit(2)
    }
}

var logger = Logger(label: "kube-test-server")
logger.logLevel = .warning
let server = KubeTestServer(configuration: configuration, logger: logger)
let host = configuration.host
try await server.run { port in
    FileHandle.standardOutput.write(Data("kube-test-server listening on http://\(host):\(port)\n".utf8))
}
