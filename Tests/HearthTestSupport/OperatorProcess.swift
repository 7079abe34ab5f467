// OperatorProcess.swift: the built `hearth-operator run` as a child process against a kube-test-server child,
// for the operator's and the agent's end-to-end tests.

import Foundation

/// A `hearth-operator run` child process and the addresses of its metrics and health endpoints.
public struct OperatorProcess: Sendable {
    public struct StartError: Error, CustomStringConvertible {
        public var description: String
    }

    public let identity: String
    public let process: BackgroundProcess
    public let metricsURL: String
    public let healthURL: String

    /// Starts a replica on free ports with the default lease timings (15 s / 10 s / 2 s) and waits until both
    /// endpoints listen.
    public static func start(
        _ cluster: KubeTestServerProcess,
        identity: String,
        extraArguments: [String] = []
    ) async throws -> OperatorProcess {
        let executable = BuildProducts.executable("hearth-operator")
        let process = try BackgroundProcess(
            executable,
            [
                "run", "--kubeconfig", cluster.kubeconfigPath, "--identity", identity,
                "--metrics-address", "127.0.0.1:0", "--health-address", "127.0.0.1:0", "--probe-timeout", "1",
                "--namespace", "hearth-system",
            ] + extraArguments,
            directory: cluster.directory
        )
        var addresses: [String: String] = [:]
        _ = await eventually(timeout: .seconds(30)) {
            addresses = Self.listeningAddresses(process.output)
            return addresses.count == 2 || !process.isRunning
        }
        guard let metrics = addresses["metrics"], let health = addresses["health"] else {
            process.stop()
            throw StartError(description: "hearth-operator \(identity) did not start: \(process.output)")
        }
        return OperatorProcess(
            identity: identity,
            process: process,
            metricsURL: "http://\(metrics)",
            healthURL: "http://\(health)"
        )
    }

    /// `http.endpoint` → `http.address` from the "listening" log lines.
    public static func listeningAddresses(_ log: String) -> [String: String] {
        var addresses: [String: String] = [:]
        for line in log.split(separator: "\n") where line.hasSuffix("listening") {
            let tokens = line.split(separator: " ")
            func value(_ key: String) -> String? {
                tokens.first { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
            }
            if let name = value("http.endpoint"), let address = value("http.address") { addresses[name] = address }
        }
        return addresses
    }
}
