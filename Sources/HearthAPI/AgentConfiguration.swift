// AgentConfiguration.swift: the one contract between operator and agent. The operator encodes it into the agent
// ConfigMap (`targets.json`); `hearth-agent run` decodes it from the mounted file. Versioned: an agent refuses a
// version it does not know instead of guessing. Credentials are named by file inside the agent's `--credentials`
// folder, never by absolute path, so the same file works in a pod and in a test.

import Foundation
import KubeModel

/// Everything a node agent needs to know about the targets it profiles.
public struct AgentConfiguration: Codable, Sendable, Hashable {
    /// The version this build writes and reads.
    public static let currentVersion = 1
    /// The ConfigMap key and mounted file name.
    public static let fileName = "targets.json"

    /// The schema version (``currentVersion``).
    public var version: Int
    /// A fingerprint of this configuration and of the credential versions it refers to, chosen by the operator.
    /// The agent reports the revision it runs, which is how the operator knows a target is live on a node.
    public var revision: String
    /// Every active target, sorted by namespace and name.
    public var targets: [Target]

    public init(version: Int = Self.currentVersion, revision: String = "", targets: [Target]) {
        self.version = version
        self.revision = revision
        self.targets = targets
    }

    /// One ProfilingTarget, resolved by the operator.
    public struct Target: Codable, Sendable, Hashable {
        public var namespace: String
        public var name: String
        /// Pods of ``namespace`` this target selects.
        public var selector: Selector
        /// Profile types (`cpu`).
        public var profiles: [String]
        /// Samples per second for the selected containers.
        public var sampleRate: Int
        /// A `service_name` template the user chose; nil means: the pod annotation `pyroscope.io/service_name`,
        /// else ``AgentConfiguration/defaultServiceName``.
        public var serviceName: String?
        /// Extra labels on every profile of this target.
        public var labels: [String: String]
        /// Where this target's profiles go.
        public var pyroscope: Backend

        public init(
            namespace: String,
            name: String,
            selector: Selector = Selector(),
            profiles: [String] = ["cpu"],
            sampleRate: Int = 99,
            serviceName: String? = nil,
            labels: [String: String] = [:],
            pyroscope: Backend
        ) {
            self.namespace = namespace
            self.name = name
            self.selector = selector
            self.profiles = profiles
            self.sampleRate = sampleRate
            self.serviceName = serviceName
            self.labels = labels
            self.pyroscope = pyroscope
        }

        /// `namespace/name`.
        public var key: String { "\(self.namespace)/\(self.name)" }
    }

    /// A Kubernetes label selector (an empty one selects every pod of the namespace).
    public struct Selector: Codable, Sendable, Hashable {
        public var matchLabels: [String: String]?
        public var matchExpressions: [Requirement]?

        public init(matchLabels: [String: String]? = nil, matchExpressions: [Requirement]? = nil) {
            self.matchLabels = matchLabels
            self.matchExpressions = matchExpressions
        }

        public struct Requirement: Codable, Sendable, Hashable {
            public var key: String
            /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
            public var `operator`: String
            public var values: [String]?

            public init(key: String, operator op: String, values: [String]? = nil) {
                self.key = key
                self.operator = op
                self.values = values
            }
        }

        /// Whether a pod with these labels is selected (by KubeModel's label selector matching, as the operator
        /// selects; an operator the API does not define selects nothing).
        public func matches(_ labels: [String: String]) -> Bool {
            SelectorRequirement.matches(
                SelectorRequirement.labelSelector(
                    matchLabels: self.matchLabels,
                    matchExpressions: (self.matchExpressions ?? []).map { ($0.key, $0.operator, $0.values ?? []) }
                ),
                labels
            )
        }
    }

    /// A Pyroscope backend: the push URL, the tenant and credential files.
    public struct Backend: Codable, Sendable, Hashable {
        /// `http(s)://host:port`, without a trailing slash.
        public var url: String
        /// Sent as `X-Scope-OrgID`.
        public var tenantID: String?
        public var basicAuth: BasicAuth?
        /// A file in the credentials folder holding a bearer token.
        public var bearerTokenFile: String?

        public init(url: String, tenantID: String? = nil, basicAuth: BasicAuth? = nil, bearerTokenFile: String? = nil) {
            self.url = url
            self.tenantID = tenantID
            self.basicAuth = basicAuth
            self.bearerTokenFile = bearerTokenFile
        }
    }

    public struct BasicAuth: Codable, Sendable, Hashable {
        public var username: String
        /// A file in the credentials folder holding the password.
        public var passwordFile: String

        public init(username: String, passwordFile: String) {
            self.username = username
            self.passwordFile = passwordFile
        }
    }

    /// The `service_name` template when neither the target nor the pod names one.
    public static let defaultServiceName = "{{namespace}}/{{workload}}"
    /// The pod annotation that names a service when the target does not (as Grafana Alloy reads it).
    public static let serviceNameAnnotation = "pyroscope.io/service_name"
}

/// Why a configuration file cannot be used.
public struct AgentConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        /// Not JSON, or a field of the wrong type.
        case malformed
        /// A `version` this agent does not know.
        case unsupportedVersion
        /// Well-formed but not usable (a field out of range).
        case invalid
    }

    public var code: Code
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(self.code.rawValue): \(self.message)" }
}

extension AgentConfiguration {
    /// Stable JSON (sorted keys), so the same configuration always has the same bytes.
    public func encoded() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding plain strings, integers and dictionaries cannot fail.
        return (try? encoder.encode(self)) ?? Data()
    }

    /// Decodes and checks a configuration file's bytes.
    public static func decode(_ data: Data) throws(AgentConfigurationError) -> AgentConfiguration {
        struct Versioned: Decodable { var version: Int? }
        let decoder = JSONDecoder()
        let versioned: Versioned
        do {
            versioned = try decoder.decode(Versioned.self, from: data)
        } catch {
            throw AgentConfigurationError(code: .malformed, message: "not a JSON object: \(Self.describe(error))")
        }
        guard let version = versioned.version else {
            throw AgentConfigurationError(code: .malformed, message: "\"version\" is missing")
        }
        guard version == Self.currentVersion else {
            throw AgentConfigurationError(
                code: .unsupportedVersion,
                message: "version \(version) is not supported: this agent reads version \(Self.currentVersion); "
                    + "run an agent image as new as the operator"
            )
        }
        let configuration: AgentConfiguration
        do {
            configuration = try decoder.decode(AgentConfiguration.self, from: data)
        } catch {
            throw AgentConfigurationError(code: .malformed, message: Self.describe(error))
        }
        try configuration.validate()
        return configuration
    }

    /// Checks what the type system cannot: ranges, URLs and plain file names.
    public func validate() throws(AgentConfigurationError) {
        for (index, target) in self.targets.enumerated() {
            let field = "targets[\(index)] (\(target.key))"
            guard (1...1000).contains(target.sampleRate) else {
                throw AgentConfigurationError(
                    code: .invalid,
                    message: "\(field).sampleRate \(target.sampleRate) is out of range 1...1000"
                )
            }
            let url = target.pyroscope.url
            guard url.hasPrefix("http://") || url.hasPrefix("https://"), URL(string: url)?.host != nil else {
                throw AgentConfigurationError(
                    code: .invalid,
                    message: "\(field).pyroscope.url \"\(url)\" is not an http(s) URL"
                )
            }
            let files = [target.pyroscope.basicAuth?.passwordFile, target.pyroscope.bearerTokenFile].compactMap { $0 }
            for file in files where file.isEmpty || file.contains("/") || file.hasPrefix(".") {
                throw AgentConfigurationError(
                    code: .invalid,
                    message: "\(field).pyroscope: credential file \"\(file)\" must be a plain file name inside the "
                        + "credentials folder"
                )
            }
        }
    }

    private static func describe(_ error: any Error) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let path = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return path.isEmpty ? "" : "at \(path.hasPrefix(".") ? String(path.dropFirst()) : path): "
        }
        switch error as? DecodingError {
        case .keyNotFound(let key, let context)?:
            return "\(path(context))\"\(key.stringValue)\" is missing"
        case .typeMismatch(let type, let context)?:
            return "\(path(context))expected \(type)"
        case .valueNotFound(let type, let context)?:
            return "\(path(context))expected \(type), found null"
        case .dataCorrupted(let context)?:
            return "\(path(context))\(context.debugDescription)"
        default:
            return String(describing: error)
        }
    }
}
