// KubeConfigTests.swift: kubeconfig and in-cluster configuration, credentials (token file rotation, exec plugins),
// and errors that name the file and the field.

import Foundation
import HearthTestSupport
import KubeModel
import Testing

@testable import KubeClient

@Suite("Client configuration", .timeLimit(.minutes(1)))
struct KubeConfigTests {
    func load(_ yaml: String, in directory: String, context: String? = nil) throws -> ClientConfiguration {
        let path = directory + "/config"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return try ClientConfiguration.kubeconfig(path: path, context: context)
    }

    func configError(_ yaml: String, in directory: String) -> KubeError? {
        do {
            _ = try self.load(yaml, in: directory)
            return nil
        } catch let error as KubeError {
            return error
        } catch {
            return nil
        }
    }

    static let valid = """
        apiVersion: v1
        kind: Config
        current-context: dev
        clusters:
        - name: c1
          cluster: {server: "https://10.0.0.1:6443", insecure-skip-tls-verify: true}
        contexts:
        - name: dev
          context: {cluster: c1, user: u1, namespace: shop}
        - name: other
          context: {cluster: c1, user: u2}
        users:
        - name: u1
          user: {token: abc}
        - name: u2
          user: {tokenFile: token.txt}

        """

    @Test("reads the current or a named context, with token and relative token files")
    func validConfig() async throws {
        try await withTemporaryDirectory { directory in
            let configuration = try self.load(Self.valid, in: directory)
            #expect(configuration.server == "https://10.0.0.1:6443")
            #expect(configuration.namespace == "shop")
            #expect(configuration.insecureSkipTLSVerify)
            guard case .token("abc") = configuration.credentials else {
                Issue.record("expected a token, got \(configuration.credentials)")
                return
            }
            try "t1\n".write(toFile: directory + "/token.txt", atomically: true, encoding: .utf8)
            let other = try ClientConfiguration.kubeconfig(path: directory + "/config", context: "other")
            guard case .tokenFile(let path) = other.credentials else {
                Issue.record("expected a token file, got \(other.credentials)")
                return
            }
            #expect(path == directory + "/token.txt")
            #expect(other.namespace == "default")
        }
    }

    @Test(
        "malformed kubeconfigs give one error naming the file and the field",
        arguments: [
            ("current-context: dev\nclusters: [\n", "not valid YAML"),
            (
                valid.replacingOccurrences(of: "server: \"https://10.0.0.1:6443\", ", with: ""),
                #"clusters[name="c1"].cluster.server: required"#
            ),
            (
                valid.replacingOccurrences(of: "https://10.0.0.1:6443", with: "10.0.0.1:6443"),
                #"clusters[name="c1"].cluster.server: must be an http(s) URL"#
            ),
            (
                valid.replacingOccurrences(of: "current-context: dev", with: "current-context: prod"),
                #"contexts: no context named "prod""#
            ),
            (
                valid.replacingOccurrences(
                    of: "{token: abc}",
                    with: "{client-certificate-data: \"!!\", client-key-data: \"a2V5\"}"
                ), #"users[name="u1"].user.client-certificate-data: invalid base64 data"#
            ),
            (
                valid.replacingOccurrences(of: "{token: abc}", with: "{client-key-data: \"a2V5\"}"),
                #"users[name="u1"].user.client-certificate-data: required with a client key"#
            ),
            (
                valid.replacingOccurrences(
                    of: "{token: abc}",
                    with: "{exec: {apiVersion: client.authentication.k8s.io/v1}}"
                ), #"users[name="u1"].user.exec.command: required"#
            ),
            (
                valid.replacingOccurrences(
                    of: "insecure-skip-tls-verify: true",
                    with: "insecure-skip-tls-verify: maybe"
                ), #"clusters[name="c1"].cluster.insecure-skip-tls-verify: expected true or false"#
            ),
        ]
    )
    func malformed(yaml: String, expected: String) async throws {
        try await withTemporaryDirectory { directory in
            let error = try #require(self.configError(yaml, in: directory))
            #expect(error.code == .invalidConfiguration)
            #expect(error.message.hasPrefix(directory + "/config: "), "\(error.message)")
            #expect(error.message.contains(expected), "\(error.message)")
        }
    }

    @Test("missing credentials name the user and the field")
    func missingCredentials() async throws {
        try await withTemporaryDirectory { directory in
            let noUser = Self.valid.replacingOccurrences(of: "- name: u1\n  user: {token: abc}\n", with: "")
            let error = try #require(self.configError(noUser, in: directory))
            #expect(error.code == .missingCredentials)
            #expect(error.message.contains(#"users: no user named "u1" (used by contexts[name="dev"].context.user)"#))
            let empty = Self.valid.replacingOccurrences(of: "{token: abc}", with: "{}")
            let none = try #require(self.configError(empty, in: directory))
            #expect(none.code == .missingCredentials)
            #expect(none.message.contains(#"users[name="u1"].user: no credentials"#))
            let missingFile = Self.valid.replacingOccurrences(
                of: "current-context: dev",
                with: "current-context: other"
            )
            let file = try #require(self.configError(missingFile, in: directory))
            #expect(file.message.contains(#"users[name="u2"].user.tokenFile: cannot read file"#))
        }
    }

    @Test("a malformed CA names the source and field")
    func badCertificateAuthority() async throws {
        var configuration = ClientConfiguration(server: "https://127.0.0.1:1")
        configuration.certificateAuthority = Array("not a pem".utf8)
        configuration.source = "/etc/kubeconfig"
        let error = #expect(throws: KubeError.self) {
            _ = try KubeClient(configuration: configuration, logger: testLogger())
        }
        #expect(error?.message == "/etc/kubeconfig: certificate-authority: not a PEM certificate")
    }

    @Test("token files are re-read when they rotate")
    func tokenRotation() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/token"
            try "first".write(toFile: path, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes(
                [.modificationDate: Date(timeIntervalSinceNow: -60)],
                ofItemAtPath: path
            )
            let provider = CredentialProvider(
                configuration: ClientConfiguration(server: "https://x", credentials: .tokenFile(path)),
                logger: testLogger()
            )
            #expect(try await provider.authorizationHeader() == "Bearer first")
            try "second".write(toFile: path, atomically: true, encoding: .utf8)
            #expect(try await provider.authorizationHeader() == "Bearer second")
        }
    }

    @Test("exec credential plugins: token cached until it expires, env passed, failures explained")
    func execPlugin() async throws {
        try await withTemporaryDirectory { directory in
            let script = directory + "/plugin.sh"
            try """
            #!/bin/sh
            n=$(cat "\(directory)/count" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "\(directory)/count"
            echo "{\\"apiVersion\\":\\"client.authentication.k8s.io/v1\\",\\"kind\\":\\"ExecCredential\\",\\"status\\":{\\"token\\":\\"$PREFIX-$n\\",\\"expirationTimestamp\\":\\"$EXPIRY\\"}}"

            """.write(toFile: script, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script)
            let yaml = Self.valid.replacingOccurrences(
                of: "{token: abc}",
                with:
                    "{exec: {apiVersion: client.authentication.k8s.io/v1, command: ./plugin.sh, env: [{name: PREFIX, value: tok}, {name: EXPIRY, value: \"2999-01-01T00:00:00Z\"}]}}"
            )
            let configuration = try self.load(yaml, in: directory)
            let provider = CredentialProvider(configuration: configuration, logger: testLogger())
            #expect(try await provider.authorizationHeader() == "Bearer tok-1")
            #expect(try await provider.authorizationHeader() == "Bearer tok-1")
            provider.invalidate()
            #expect(try await provider.authorizationHeader() == "Bearer tok-2")

            let expired = try self.load(yaml.replacingOccurrences(of: "2999", with: "2000"), in: directory)
            let expiring = CredentialProvider(configuration: expired, logger: testLogger())
            #expect(try await expiring.authorizationHeader() == "Bearer tok-3")
            #expect(try await expiring.authorizationHeader() == "Bearer tok-4")

            let failing = ClientConfiguration(
                server: "https://x",
                credentials: .exec(.init(command: "/bin/false", installHint: "install the cloud CLI"))
            )
            let error = await #expect(throws: KubeError.self) {
                try await CredentialProvider(configuration: failing, logger: testLogger())
                    .authorizationHeader()
            }
            #expect(error?.code == .missingCredentials)
            #expect(error?.message.contains("install the cloud CLI") == true)
        }
    }

    @Test("in-cluster configuration from the environment and the service-account directory")
    func inCluster() async throws {
        try await withTemporaryDirectory { directory in
            try "sa-token".write(toFile: directory + "/token", atomically: true, encoding: .utf8)
            try "hearth-system\n".write(toFile: directory + "/namespace", atomically: true, encoding: .utf8)
            let environment = ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"]
            let configuration = try ClientConfiguration.inCluster(environment: environment, directory: directory)
            #expect(configuration.server == "https://10.96.0.1:443")
            #expect(configuration.namespace == "hearth-system")
            let provider = CredentialProvider(configuration: configuration, logger: testLogger())
            #expect(try await provider.authorizationHeader() == "Bearer sa-token")
            let missing = #expect(throws: KubeError.self) {
                _ = try ClientConfiguration.inCluster(environment: [:], directory: directory)
            }
            #expect(missing?.message.contains("KUBERNETES_SERVICE_HOST") == true)
        }
    }

    @Test("client-side rate limit: burst, then qps")
    func rateLimiter() {
        let limiter = RateLimiter(qps: 10, burst: 3)
        let now = ContinuousClock.now
        #expect(limiter.reserve(now: now) == .zero)
        #expect(limiter.reserve(now: now) == .zero)
        #expect(limiter.reserve(now: now) == .zero)
        let wait = limiter.reserve(now: now)
        #expect(wait > .milliseconds(90) && wait <= .milliseconds(110))
    }
}
