// ProfilingTarget+Conditions.swift: condition types and reasons (kstatus conventions: CamelCase reasons,
// observedGeneration on every condition, lastTransitionTime changes only on a flip).

import Foundation
import KubeModel

/// The condition types a ProfilingTarget publishes.
public enum ConditionType {
    /// True only when the agent runs this target's configuration everywhere and Pyroscope answers.
    public static let ready = "Ready"
    /// kstatus: True while the operator is still working towards the spec.
    public static let reconciling = "Reconciling"
    /// kstatus: True when progress is impossible until the user changes something.
    public static let stalled = "Stalled"
    /// The shared agent DaemonSet runs a configuration that includes this target, on every node.
    public static let agentRolledOut = "AgentRolledOut"
    /// True while the agent on a node running this target's pods reports itself degraded (a full map: it profiles
    /// at a coarser grain than asked; `status.agent.degraded` says where and why). Independent of Ready: a degraded
    /// agent still profiles.
    public static let agentDegraded = "AgentDegraded"
    /// Pyroscope's readiness endpoint answered 200.
    public static let pyroscopeReachable = "PyroscopeReachable"
    /// The Grafana datasource exists in Grafana as the target asks (True), cannot be (False: the reason says
    /// why), or Grafana could not be asked (Unknown). Independent of Ready: a Grafana problem never stops profiles.
    public static let datasourceSynced = "DatasourceSynced"

    public static let all = [
        ready, reconciling, stalled, agentRolledOut, agentDegraded, pyroscopeReachable, datasourceSynced,
    ]
}

/// Condition reasons (CamelCase, matching `^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$`).
public enum ConditionReason {
    public static let reconciling = "Reconciling"
    public static let reconciled = "Reconciled"
    public static let invalidSpec = "InvalidSpec"
    public static let suspended = "Suspended"
    public static let secretNotFound = "SecretNotFound"
    public static let secretKeyMissing = "SecretKeyMissing"
    public static let noBackend = "NoPyroscopeBackend"
    public static let serviceNotFound = "ServiceNotFound"
    public static let servicePortNotFound = "ServicePortNotFound"
    public static let reachable = "Reachable"
    public static let unreachable = "Unreachable"
    public static let notProbed = "NotProbed"
    public static let agentPending = "AgentPending"
    public static let agentRollingOut = "AgentRollingOut"
    public static let agentRolledOut = "AgentRolledOut"
    /// AgentDegraded: an agent on a node running the target's pods reports itself degraded.
    public static let nodesDegraded = "NodesDegraded"
    /// AgentDegraded: no agent on a node running the target's pods reports itself degraded.
    public static let notDegraded = "NotDegraded"
    /// Writing the agent objects failed (an RBAC denial, an admission webhook): the message is the API server's.
    public static let applyFailed = "ApplyFailed"
    /// DatasourceSynced: the datasource in Grafana matches.
    public static let datasourceSynced = "DatasourceSynced"
    /// DatasourceSynced: no `spec.grafana` in the target.
    public static let datasourceNotRequested = "NotRequested"
    /// DatasourceSynced: the target asks for a datasource, but the operator runs without `--grafana-url`.
    public static let grafanaNotConfigured = "GrafanaNotConfigured"
    /// DatasourceSynced: Grafana did not answer, answered 5xx, or timed out (retried with backoff).
    public static let grafanaUnreachable = "GrafanaUnreachable"
    /// DatasourceSynced: Grafana refused the operator's credentials (401/403), or they are missing.
    public static let grafanaUnauthorized = "GrafanaUnauthorized"
    /// DatasourceSynced: another datasource (not Hearth's) already has the name.
    public static let datasourceNameConflict = "DatasourceNameConflict"
    /// DatasourceSynced: the datasource with the uid is provisioned from a file, so the API cannot change it.
    public static let datasourceReadOnly = "DatasourceReadOnly"
    /// DatasourceSynced: targets sharing the uid ask for different datasources (the oldest target's wins).
    public static let datasourceSpecConflict = "DatasourceSpecConflict"
    /// DatasourceSynced: Grafana rejected the datasource (400), e.g. an invalid URL.
    public static let datasourceRejected = "DatasourceRejected"
    public static let progressing = "Progressing"
    public static let stalled = "Stalled"
    public static let notStalled = "NotStalled"
    public static let done = "Done"

    /// Whether a reason is valid for metav1.Condition.
    public static func isValid(_ reason: String) -> Bool {
        reason.wholeMatch(of: /[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?/) != nil && reason.count <= 1024
    }
}

extension Condition {
    /// `True`, `False` or `Unknown` from a Bool? (nil is Unknown).
    public static func status(_ value: Bool?) -> String {
        switch value {
        case true?: return "True"
        case false?: return "False"
        case nil: return "Unknown"
        }
    }
}

extension ProfilingTargetStatus {
    /// The condition of a type.
    public func condition(_ type: String) -> Condition? { (self.conditions ?? [])[type: type] }
}
