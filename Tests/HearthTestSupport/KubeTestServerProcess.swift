// KubeTestServerProcess.swift: the `kube-test-server` executable as a child process, a kubeconfig for it, and the
// real kubectl pointed at it (own discovery cache per test).

import Foundation

/// A running `kube-test-server` child with a kubeconfig in a scratch directory.
public struct KubeTestServerProcess: Sendable {
    public struct StartError: Error, CustomStringConvertible {
        public var description: String
    }

    public let server: BackgroundProcess
    /// The server's base URL, e.g. `http://127.0.0.1:41234`.
    public let url: String
    /// The scratch directory holding the kubeconfig, kubectl's cache and written files.
    public let directory: String
    public let kubectl: String

    public var kubeconfigPath: String { self.directory + "/kubeconfig" }

    /// The installed kubectl, if any.
    public static var kubectlExecutable: String? {
        ["/usr/bin/kubectl", "/usr/local/bin/kubectl"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Starts the built server on a free port in `directory` and writes a kubeconfig (namespace `default`).
    public static func start(in directory: String) async throws -> KubeTestServerProcess {
        let executable = BuildProducts.executable("kube-test-server")
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw StartError(description: "\(executable) is missing: build the package's products first")
        }
        guard let kubectl = self.kubectlExecutable else {
            throw StartError(description: "kubectl is not installed (scripts/install-deps.sh installs it)")
        }
        let server = try BackgroundProcess(
            executable,
            ["--port", "0", "--bookmark-interval", "1"],
            directory: directory
        )
        var url: String?
        _ = await eventually(timeout: .seconds(20)) {
            if let line = server.output.split(separator: "\n").first(where: { $0.contains("listening on ") }) {
                url = line.components(separatedBy: "listening on ").last
            }
            return url != nil || !server.isRunning
        }
        guard let url else {
            server.stop()
            throw StartError(description: "kube-test-server did not start: \(server.output)")
        }
        let kubeconfig = """
            apiVersion: v1
            kind: Config
            clusters:
            - name: test
              cluster: {server: "\(url)"}
            contexts:
            - name: test
              context: {cluster: test, namespace: default}
            current-context: test
            users: []

            """
        try kubeconfig.write(toFile: directory + "/kubeconfig", atomically: true, encoding: .utf8)
        return KubeTestServerProcess(server: server, url: url, directory: directory, kubectl: kubectl)
    }

    /// Runs `body` with a server in a fresh scratch directory; the server is stopped afterwards.
    public static func with<Result>(_ body: (KubeTestServerProcess) async throws -> Result) async throws -> Result {
        try await withTemporaryDirectory { directory in
            let process = try await self.start(in: directory)
            defer { process.server.stop() }
            return try await body(process)
        }
    }

    public var kubectlBaseArguments: [String] {
        ["--kubeconfig", self.kubeconfigPath, "--cache-dir", self.directory + "/cache"]
    }

    /// Runs kubectl to completion.
    public func kubectl(_ arguments: [String]) async throws -> ChildProcess.Output {
        try await ChildProcess.runDetached(self.kubectl, self.kubectlBaseArguments + arguments)
    }

    public func kubectl(_ arguments: String...) async throws -> ChildProcess.Output {
        try await self.kubectl(arguments)
    }

    /// Starts kubectl in the background (watches, waits, deletes that block).
    public func kubectlInBackground(_ arguments: [String]) throws -> BackgroundProcess {
        try BackgroundProcess(self.kubectl, self.kubectlBaseArguments + arguments, directory: self.directory)
    }

    /// Writes `content` to a file in the scratch directory and returns its path.
    public func write(_ name: String, _ content: String) throws -> String {
        let path = self.directory + "/" + name
        try content.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}
