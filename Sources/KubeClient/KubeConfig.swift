// KubeConfig.swift: client configuration from a kubeconfig file or from the in-cluster service account.

import Foundation
import KubeModel
import Yams

/// How the client reaches and authenticates to the API server.
public struct ClientConfiguration: Sendable {
    /// Credentials presented to the server.
    public enum Credentials: Sendable {
        case none
        /// A static bearer token.
        case token(String)
        /// A bearer token read from a file and re-read when the file changes (service-account token rotation).
        case tokenFile(String)
        /// A client certificate and key (PEM).
        case clientCertificate(certificate: [UInt8], key: [UInt8])
        /// An exec credential plugin (`client.authentication.k8s.io`).
        case exec(ExecConfig)
        /// Basic authentication.
        case basic(username: String, password: String)
    }

    /// An exec credential plugin.
    public struct ExecConfig: Sendable, Hashable {
        public var command: String
        public var args: [String]
        public var env: [String: String]
        public var apiVersion: String
        public var installHint: String?

        public init(
            command: String,
            args: [String] = [],
            env: [String: String] = [:],
            apiVersion: String = "client.authentication.k8s.io/v1",
            installHint: String? = nil
        ) {
            self.command = command
            self.args = args
            self.env = env
            self.apiVersion = apiVersion
            self.installHint = installHint
        }
    }

    /// `https://host:port` (or `http://` for test servers).
    public var server: String
    public var credentials: Credentials = .none
    /// Extra client certificate, used together with token or exec credentials.
    public var clientCertificate: (certificate: [UInt8], key: [UInt8])? = nil
    /// PEM bundle of trusted CAs; nil uses the system roots.
    public var certificateAuthority: [UInt8]? = nil
    public var insecureSkipTLSVerify = false
    public var tlsServerName: String? = nil
    /// The default namespace (kubeconfig context namespace or the pod's namespace).
    public var namespace: String = "default"
    /// Timeout of every non-watch call (default 30 s).
    public var timeout: Duration = .seconds(30)
    /// Reads on a watch that see no data for this long fail, so the watcher reconnects (default 330 s: the
    /// watcher's longest server timeout plus a margin).
    public var watchIdleTimeout: Duration = .seconds(330)
    /// Watches that can stream at once: each holds one HTTP/1.1 connection for its lifetime. AsyncHTTPClient
    /// keeps 8 per host by default, fewer than a controller with a dozen watches needs (default 32).
    public var maxConcurrentWatches: Int = 32
    /// Client-side rate limit: sustained requests per second (default 20; 0 disables the limit).
    public var qps: Double = 20
    /// Client-side rate limit: burst size (default 40).
    public var burst: Int = 40
    /// Sent as User-Agent; its part before `/` is the default field manager.
    public var userAgent: String = "hearth/0.1"
    /// Where the configuration came from (for messages).
    public var source: String = ""

    public init(server: String, credentials: Credentials = .none) {
        self.server = server.hasSuffix("/") ? String(server.dropLast()) : server
        self.credentials = credentials
    }

    // MARK: In cluster

    /// The in-cluster configuration: `KUBERNETES_SERVICE_HOST`/`PORT`, the service-account token (re-read when it
    /// rotates), CA and namespace under `/var/run/secrets/kubernetes.io/serviceaccount`.
    public static func inCluster(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        directory: String = "/var/run/secrets/kubernetes.io/serviceaccount"
    ) throws -> ClientConfiguration {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty else {
            throw KubeError(
                code: .invalidConfiguration,
                message: "in-cluster configuration: KUBERNETES_SERVICE_HOST is not set (not running in a pod?)"
            )
        }
        guard let port = environment["KUBERNETES_SERVICE_PORT"], !port.isEmpty else {
            throw KubeError(
                code: .invalidConfiguration,
                message: "in-cluster configuration: KUBERNETES_SERVICE_PORT is not set"
            )
        }
        let tokenPath = "\(directory)/token"
        guard FileManager.default.isReadableFile(atPath: tokenPath) else {
            throw KubeError(code: .missingCredentials, message: "\(tokenPath): service-account token file is missing")
        }
        let hostPart = host.contains(":") ? "[\(host)]" : host
        var configuration = ClientConfiguration(
            server: "https://\(hostPart):\(port)",
            credentials: .tokenFile(tokenPath)
        )
        let caPath = "\(directory)/ca.crt"
        if let ca = FileManager.default.contents(atPath: caPath) { configuration.certificateAuthority = Array(ca) }
        if let namespace = FileManager.default.contents(atPath: "\(directory)/namespace") {
            let value = String(decoding: namespace, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if !value.isEmpty { configuration.namespace = value }
        }
        configuration.source = "in-cluster"
        return configuration
    }

    /// In-cluster when `KUBERNETES_SERVICE_HOST` is set, else the kubeconfig from `KUBECONFIG` or `~/.kube/config`.
    public static func automatic(
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> ClientConfiguration {
        if environment["KUBERNETES_SERVICE_HOST"] != nil { return try .inCluster(environment: environment) }
        let path =
            environment["KUBECONFIG"]?.split(separator: ":").first.map(String.init)
            ?? ((environment["HOME"] ?? NSHomeDirectory()) + "/.kube/config")
        return try .kubeconfig(path: path)
    }

    // MARK: Kubeconfig

    /// Loads a kubeconfig file. Errors name the file and the field at fault.
    public static func kubeconfig(path: String, context: String? = nil) throws -> ClientConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw KubeError(code: .invalidConfiguration, message: "\(path): cannot read kubeconfig file")
        }
        let text = String(decoding: data, as: UTF8.self)
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        return try self.kubeconfig(yaml: text, file: path, directory: directory, context: context)
    }

    /// Parses kubeconfig YAML. `file` is used in error messages; relative paths resolve against `directory`.
    public static func kubeconfig(
        yaml: String,
        file: String,
        directory: String,
        context requested: String? = nil
    )
        throws -> ClientConfiguration
    {
        func fail(_ field: String, _ problem: String, code: KubeError.Code = .invalidConfiguration) -> KubeError {
            KubeError(code: code, message: "\(file): \(field): \(problem)")
        }
        let root: JSONValue
        do {
            root = try YAMLDecoder().decode(JSONValue.self, from: yaml)
        } catch {
            throw KubeError(code: .invalidConfiguration, message: "\(file): not valid YAML: \(error)", cause: error)
        }
        guard case .object = root else { throw fail("(document)", "expected a mapping") }
        func named(_ list: String, _ name: String) throws -> JSONValue? {
            guard let items = root[list] else { return nil }
            guard let array = items.arrayValue else { throw fail(list, "expected a list") }
            return array.first { $0["name"]?.stringValue == name }
        }
        let contextName = requested ?? root["current-context"]?.stringValue ?? ""
        if contextName.isEmpty {
            throw fail("current-context", "is not set and no context was requested")
        }
        guard let contextEntry = try named("contexts", contextName) else {
            throw fail("contexts", "no context named \"\(contextName)\"")
        }
        let contextField = "contexts[name=\"\(contextName)\"].context"
        guard let context = contextEntry["context"], context.objectValue != nil else {
            throw fail(contextField, "missing")
        }
        guard let clusterName = context["cluster"]?.stringValue, !clusterName.isEmpty else {
            throw fail("\(contextField).cluster", "required")
        }
        guard let clusterEntry = try named("clusters", clusterName) else {
            throw fail("clusters", "no cluster named \"\(clusterName)\" (used by \(contextField).cluster)")
        }
        let clusterField = "clusters[name=\"\(clusterName)\"].cluster"
        guard let cluster = clusterEntry["cluster"] else { throw fail(clusterField, "missing") }
        guard let server = cluster["server"]?.stringValue, !server.isEmpty else {
            throw fail("\(clusterField).server", "required")
        }
        guard server.hasPrefix("https://") || server.hasPrefix("http://") else {
            throw fail("\(clusterField).server", "must be an http(s) URL, got \"\(server)\"")
        }
        var configuration = ClientConfiguration(server: server)
        configuration.source = file
        func resolve(_ path: String) -> String { path.hasPrefix("/") ? path : directory + "/" + path }
        func fileBytes(_ field: String, _ path: String) throws -> [UInt8] {
            guard let data = FileManager.default.contents(atPath: resolve(path)) else {
                throw fail(field, "cannot read file \"\(resolve(path))\"")
            }
            return Array(data)
        }
        func base64(_ field: String, _ string: String) throws -> [UInt8] {
            guard let data = Data(base64Encoded: string.filter { !$0.isWhitespace }) else {
                throw fail(field, "invalid base64 data")
            }
            return Array(data)
        }
        func pem(_ value: JSONValue, data dataKey: String, file fileKey: String, in field: String) throws -> [UInt8]? {
            if let string = value[dataKey]?.stringValue { return try base64("\(field).\(dataKey)", string) }
            if let path = value[fileKey]?.stringValue { return try fileBytes("\(field).\(fileKey)", path) }
            return nil
        }
        configuration.certificateAuthority = try pem(
            cluster,
            data: "certificate-authority-data",
            file: "certificate-authority",
            in: clusterField
        )
        if let insecure = cluster["insecure-skip-tls-verify"] {
            guard let value = insecure.boolValue else {
                throw fail("\(clusterField).insecure-skip-tls-verify", "expected true or false")
            }
            configuration.insecureSkipTLSVerify = value
        }
        configuration.tlsServerName = cluster["tls-server-name"]?.stringValue
        if let namespace = context["namespace"]?.stringValue, !namespace.isEmpty { configuration.namespace = namespace }

        // User (optional for plain-HTTP test servers).
        guard let userName = context["user"]?.stringValue, !userName.isEmpty else {
            if server.hasPrefix("https://") {
                throw fail(
                    "\(contextField).user",
                    "required: no credentials for an https server",
                    code: .missingCredentials
                )
            }
            return configuration
        }
        guard let userEntry = try named("users", userName) else {
            throw fail(
                "users",
                "no user named \"\(userName)\" (used by \(contextField).user)",
                code: .missingCredentials
            )
        }
        let userField = "users[name=\"\(userName)\"].user"
        let user = userEntry["user"] ?? [:]
        let certificate = try pem(user, data: "client-certificate-data", file: "client-certificate", in: userField)
        let key = try pem(user, data: "client-key-data", file: "client-key", in: userField)
        switch (certificate, key) {
        case (let certificate?, let key?): configuration.clientCertificate = (certificate, key)
        case (.some, nil): throw fail("\(userField).client-key-data", "required with a client certificate")
        case (nil, .some): throw fail("\(userField).client-certificate-data", "required with a client key")
        case (nil, nil): break
        }
        if let token = user["token"]?.stringValue, !token.isEmpty {
            configuration.credentials = .token(token)
        } else if let tokenFile = user["tokenFile"]?.stringValue, !tokenFile.isEmpty {
            guard FileManager.default.isReadableFile(atPath: resolve(tokenFile)) else {
                throw fail(
                    "\(userField).tokenFile",
                    "cannot read file \"\(resolve(tokenFile))\"",
                    code: .missingCredentials
                )
            }
            configuration.credentials = .tokenFile(resolve(tokenFile))
        } else if let exec = user["exec"] {
            let field = "\(userField).exec"
            guard let command = exec["command"]?.stringValue, !command.isEmpty else {
                throw fail("\(field).command", "required")
            }
            guard let apiVersion = exec["apiVersion"]?.stringValue,
                apiVersion.hasPrefix("client.authentication.k8s.io/")
            else {
                throw fail("\(field).apiVersion", "required (client.authentication.k8s.io/v1 or v1beta1)")
            }
            var env: [String: String] = [:]
            for (index, item) in (exec["env"]?.arrayValue ?? []).enumerated() {
                guard let name = item["name"]?.stringValue else {
                    throw fail("\(field).env[\(index)].name", "required")
                }
                env[name] = item["value"]?.stringValue ?? ""
            }
            let resolvedCommand = command.contains("/") && !command.hasPrefix("/") ? resolve(command) : command
            configuration.credentials = .exec(
                ExecConfig(
                    command: resolvedCommand,
                    args: exec["args"]?.arrayValue?.compactMap(\.stringValue) ?? [],
                    env: env,
                    apiVersion: apiVersion,
                    installHint: exec["installHint"]?.stringValue
                )
            )
        } else if let username = user["username"]?.stringValue {
            configuration.credentials = .basic(username: username, password: user["password"]?.stringValue ?? "")
        } else if user["auth-provider"] != nil {
            throw fail("\(userField).auth-provider", "auth-provider plugins are not supported; use exec credentials")
        } else if configuration.clientCertificate == nil, server.hasPrefix("https://") {
            throw fail(
                userField,
                "no credentials (token, tokenFile, client certificate or exec)",
                code: .missingCredentials
            )
        }
        return configuration
    }
}
