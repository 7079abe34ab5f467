// OperatorConfiguration.swift: everything the operator is told at startup (flags of `hearth-operator run`).

import HearthAPI
import KubeModel

/// Operator settings, read once at startup.
public struct OperatorConfiguration: Sendable {
    /// How the agent container is privileged.
    public struct SecurityMode: Sendable, Hashable, RawRepresentable, CustomStringConvertible {
        public var rawValue: String
        public init?(rawValue: String) {
            guard ["privileged", "capabilities"].contains(rawValue) else { return nil }
            self.rawValue = rawValue
        }
        /// `privileged: true` (the default, as upstream charts do).
        public static let privileged = Self(rawValue: "privileged")!
        /// Only the capabilities eBPF profiling needs, read-only root file system.
        public static let capabilities = Self(rawValue: "capabilities")!
        public var description: String { self.rawValue }
    }

    /// The namespace of the agent DaemonSet and its objects (the operator's own).
    public var namespace: String = "hearth-system"
    /// Only watch ProfilingTargets (and their Secrets, Services, Pods) in this namespace; nil watches all.
    public var watchNamespace: String?
    /// Field manager for every write.
    public var fieldManager: String = "hearth-operator"
    /// The agent image.
    public var agentImage: String = "ghcr.io/hearth-dev/hearth-agent:0.1.0"
    public var securityMode: SecurityMode = .privileged
    public var tolerations: [Toleration] = []
    public var nodeSelector: [String: String] = [:]
    public var resources: ResourceRequirements = {
        var resources = ResourceRequirements()
        resources.requests = ["cpu": "50m", "memory": "64Mi"]
        resources.limits = ["memory": "256Mi"]
        return resources
    }()
    public var priorityClassName: String?
    /// The agent's command line: the mounted paths, and the options set by `--agent-unwind`,
    /// `--agent-unwind-table-mib` and `--agent-memory-budget-mib`.
    public var agentCommandLine: AgentCommandLine = .inCluster
    /// Used by targets without `spec.pyroscope`.
    public var defaultBackend: PyroscopeBackend?
    /// Timeout of one Pyroscope readiness probe.
    public var probeTimeout: Duration = .seconds(3)
    /// How long a reconcile reuses a backend's probe result.
    public var probeCacheTTL: Duration = .seconds(30)
    /// How often a backend that did not answer is probed again (once for all its targets; those whose status
    /// the result changes are reconciled).
    public var notReadyRequeue: Duration = .seconds(30)
    /// How often a backend that answered is probed again.
    public var readyRequeue: Duration = .seconds(300)
    /// Concurrent reconciles.
    public var workers: Int = 4
    /// Where Grafana is; nil: datasources are not provisioned (targets asking for one say so).
    public var grafana: GrafanaSettings?

    public init() {}

    /// Names of the agent's objects.
    public var agentName: String { "hearth-agent" }
    public var configMapName: String { "hearth-agent-config" }
    public var secretName: String { "hearth-agent-credentials" }
    /// Cluster-scoped names carry the namespace, so two installations do not collide.
    public var clusterRoleName: String { "hearth-agent-\(self.namespace)" }

    /// Labels on every object the operator creates.
    public var commonLabels: [String: String] {
        [
            "app.kubernetes.io/name": "hearth-agent",
            "app.kubernetes.io/part-of": "hearth",
            "app.kubernetes.io/managed-by": "hearth-operator",
            "profiling.hearth.dev/operator-namespace": self.namespace,
        ]
    }

    /// The selector of the operator's own objects.
    public var ownedSelector: String {
        "app.kubernetes.io/managed-by=hearth-operator,profiling.hearth.dev/operator-namespace=\(self.namespace)"
    }
}

/// The Grafana the operator provisions datasources in (`--grafana-url`, `--grafana-credentials`).
public struct GrafanaSettings: Sendable, Hashable {
    /// Grafana's root URL.
    public var url: String
    /// The Secret with key `token` (a service-account token) or keys `username` and `password`.
    public var credentialsSecret: ObjectKey
    /// The limit of each Grafana API call.
    public var timeout: Duration = .seconds(10)
    /// How often a synced datasource is compared with Grafana again (UI edits are corrected then); each
    /// datasource's period is jittered by up to 10% so that they spread out.
    public var resyncPeriod: Duration = .seconds(300)
    /// The first retry after Grafana failed; each further failure doubles it, up to the resync period.
    public var initialBackoff: Duration = .seconds(5)

    public init(url: String, credentialsSecret: ObjectKey) {
        self.url = url
        self.credentialsSecret = credentialsSecret
    }
}
