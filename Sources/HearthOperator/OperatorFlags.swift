// OperatorFlags.swift: the operator's flags as values and throwing conversions, so `hearth-operator` stays thin
// and every syntax and check is table-tested: the agent's deployment (`AgentDeploymentFlags`, shared by `run` and
// `render`), Grafana (`GrafanaFlags`), the client-side API rate limit (`APIRateFlags`), and the text syntax of
// `--toleration`, `--node-selector` and `--default-pyroscope-service`. An error names the flag and what was
// expected.

import HearthAPI
import KubeModel

/// A flag value that does not parse, or flags that do not go together.
public struct FlagError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The flag at fault.
    public var flag: String
    /// What is wrong, naming the flag.
    public var description: String

    /// `FLAG VALUE: expected EXPECTED`.
    public init(flag: String, value: String, expected: String) {
        self.init(flag: flag, message: "\(flag) \(value): expected \(expected)")
    }

    /// Any other problem; `message` names the flag.
    public init(flag: String, message: String) {
        self.flag = flag
        self.description = message
    }
}

/// The flags of `run` and `render` that say how the agent is deployed, as given on the command line.
public struct AgentDeploymentFlags: Sendable {
    /// `--namespace`; nil: POD_NAMESPACE, else the default.
    public var namespace: String?
    public var agentImage = OperatorConfiguration().agentImage
    public var securityMode: OperatorConfiguration.SecurityMode = .privileged
    /// `--toleration`, each `KEY[=VALUE][:EFFECT]` or `all`.
    public var tolerations: [String] = []
    /// `--node-selector`, each `KEY=VALUE`.
    public var nodeSelectors: [String] = []
    public var cpuRequest = "50m"
    public var memoryRequest = "64Mi"
    /// Empty for none.
    public var cpuLimit = ""
    public var memoryLimit = "256Mi"
    public var priorityClassName: String?
    public var agentUnwind: AgentCommandLine.UnwindMethod = .ehFrame
    public var agentUnwindTableMiB = AgentCommandLine.defaultUnwindTableMiB
    public var agentMemoryBudgetMiB = AgentMemoryBudget.defaultMebibytes
    public var defaultPyroscopeURL: String?
    /// `NAMESPACE/NAME[:PORT]`.
    public var defaultPyroscopeService: String?
    public var defaultPyroscopeTenant: String?

    public init() {}

    /// The operator's configuration; `environment` supplies POD_NAMESPACE. Throws ``FlagError`` or
    /// ``OutOfRangeError``.
    public func configuration(environment: [String: String] = [:]) throws -> OperatorConfiguration {
        var configuration = OperatorConfiguration()
        configuration.namespace =
            self.namespace ?? environment[AgentCommandLine.Environment.podNamespace] ?? configuration.namespace
        configuration.agentImage = self.agentImage
        configuration.securityMode = self.securityMode
        configuration.tolerations = try self.tolerations.map { text in try Toleration(flag: text) }
        for text in self.nodeSelectors {
            let term = try NodeSelectorTerm(flag: text)
            configuration.nodeSelector[term.key] = term.value
        }
        var resources = ResourceRequirements()
        resources.requests = ["cpu": self.cpuRequest, "memory": self.memoryRequest]
        var limits = ["memory": self.memoryLimit]
        if !self.cpuLimit.isEmpty { limits["cpu"] = self.cpuLimit }
        resources.limits = limits
        configuration.resources = resources
        configuration.priorityClassName = self.priorityClassName
        configuration.agentCommandLine.unwind = self.agentUnwind
        configuration.agentCommandLine.unwindTableMiB = self.agentUnwindTableMiB
        configuration.agentCommandLine.memoryBudgetMiB = self.agentMemoryBudgetMiB
        try configuration.agentCommandLine.validate(flagPrefix: "agent-")
        if self.defaultPyroscopeURL != nil, self.defaultPyroscopeService != nil {
            throw FlagError(
                flag: "--default-pyroscope-service",
                message: "set at most one of --default-pyroscope-url and --default-pyroscope-service"
            )
        }
        if let url = self.defaultPyroscopeURL {
            var backend = PyroscopeBackend()
            backend.url = url
            backend.tenantID = self.defaultPyroscopeTenant
            configuration.defaultBackend = backend
        } else if let service = self.defaultPyroscopeService {
            var backend = PyroscopeBackend()
            backend.serviceRef = try ServiceReference(flag: service)
            backend.tenantID = self.defaultPyroscopeTenant
            configuration.defaultBackend = backend
        }
        return configuration
    }
}

/// `--grafana-url`, `--grafana-credentials`, `--grafana-timeout` and `--grafana-resync`, as given.
public struct GrafanaFlags: Sendable {
    public var url: String?
    /// `NAMESPACE/NAME` or `NAME` (in the operator's namespace).
    public var credentials: String?
    public var timeoutSeconds = 10
    public var resyncSeconds = 300

    public init() {}

    /// The settings, or nil without `--grafana-url` (datasources are not provisioned); `namespace` is the
    /// operator's, for a Secret named without one.
    public func settings(namespace: String) throws(FlagError) -> GrafanaSettings? {
        guard let url = self.url else {
            if self.credentials != nil {
                throw FlagError(
                    flag: "--grafana-credentials",
                    message: "--grafana-credentials needs --grafana-url (where Grafana is)"
                )
            }
            return nil
        }
        guard url.wholeMatch(of: /https?:\/\/[^\s\/?#]+(\/[^\s]*)?/) != nil else {
            throw FlagError(
                flag: "--grafana-url",
                value: url,
                expected: "an http(s) URL such as http://grafana.monitoring.svc"
            )
        }
        guard let credentials = self.credentials else {
            throw FlagError(
                flag: "--grafana-url",
                message: "--grafana-url needs --grafana-credentials NAMESPACE/NAME: a Secret with key 'token' (a "
                    + "Grafana service-account token) or keys 'username' and 'password'"
            )
        }
        let parts = credentials.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let name = parts.last, !name.isEmpty, parts.allSatisfy({ !$0.isEmpty }) else {
            throw FlagError(flag: "--grafana-credentials", value: credentials, expected: "NAMESPACE/NAME or NAME")
        }
        guard self.timeoutSeconds > 0, self.resyncSeconds >= 10 else {
            throw FlagError(
                flag: self.timeoutSeconds > 0 ? "--grafana-resync" : "--grafana-timeout",
                message: "--grafana-timeout must be at least 1 and --grafana-resync at least 10 seconds"
            )
        }
        var settings = GrafanaSettings(
            url: url,
            credentialsSecret: ObjectKey(namespace: parts.count == 2 ? String(parts[0]) : namespace, name: String(name))
        )
        settings.timeout = .seconds(self.timeoutSeconds)
        settings.resyncPeriod = .seconds(self.resyncSeconds)
        return settings
    }
}

/// `--kube-api-qps` and `--kube-api-burst`: the client-side API rate limit.
public struct APIRateFlags: Sendable, Hashable {
    /// Requests per second; 0 leaves throttling to the API server's priority and fairness.
    public var qps: Double
    public var burst: Int

    /// Checks the pair: a QPS of 0 or more and a burst of at least 1.
    public init(qps: Double, burst: Int) throws(FlagError) {
        guard qps >= 0, burst >= 1 else {
            throw FlagError(
                flag: qps >= 0 ? "--kube-api-burst" : "--kube-api-qps",
                message: "--kube-api-qps must be 0 (no client-side limit) or more and --kube-api-burst at least 1; "
                    + "got \(qps) and \(burst)"
            )
        }
        self.qps = qps
        self.burst = burst
    }
}

extension Toleration {
    /// `KEY[=VALUE][:EFFECT]`, or `all` to tolerate every taint (`--toleration`).
    public init(flag text: String) throws(FlagError) {
        self.init()
        if text == "all" {
            self.operator = "Exists"
            return
        }
        let error = FlagError(flag: "--toleration", value: text, expected: "KEY[=VALUE][:EFFECT] or all")
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let keyValue = parts[0].split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard let key = keyValue.first, !key.isEmpty else { throw error }
        self.key = key
        if keyValue.count == 2 {
            self.operator = "Equal"
            self.value = keyValue[1]
        } else {
            self.operator = "Exists"
        }
        if parts.count == 2 {
            guard ["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(parts[1]) else {
                throw FlagError(
                    flag: "--toleration",
                    value: text,
                    expected: "an effect of NoSchedule, PreferNoSchedule or NoExecute after the colon"
                )
            }
            self.effect = parts[1]
        }
    }
}

/// One `--node-selector KEY=VALUE`.
public struct NodeSelectorTerm: Sendable, Hashable {
    public var key: String
    public var value: String

    public init(flag text: String) throws(FlagError) {
        let parts = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty else {
            throw FlagError(flag: "--node-selector", value: text, expected: "KEY=VALUE")
        }
        self.key = parts[0]
        self.value = parts[1]
    }
}

extension ServiceReference {
    /// `NAMESPACE/NAME[:PORT]` (`--default-pyroscope-service`).
    public init(flag text: String) throws(FlagError) {
        let error = FlagError(flag: "--default-pyroscope-service", value: text, expected: "NAMESPACE/NAME[:PORT]")
        let namePort = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let namespaceName = namePort[0].split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard namespaceName.count == 2, !namespaceName[0].isEmpty, !namespaceName[1].isEmpty else { throw error }
        var port: Int?
        if namePort.count == 2 {
            guard let number = Int(namePort[1]), (1...65535).contains(number) else {
                throw FlagError(
                    flag: "--default-pyroscope-service",
                    value: text,
                    expected: "a port from 1 to 65535 after the colon"
                )
            }
            port = number
        }
        self.init(name: namespaceName[1], namespace: namespaceName[0], port: port)
    }
}
