// AgentLease.swift: the node Lease each agent renews in its own namespace (as kubelets do with node Leases),
// naming the configuration revision it has loaded. The operator reads them to report how many agents run the
// configuration that includes a target; a Lease that stopped being renewed means the agent on that node is gone.

import Foundation
import KubeModel

public enum AgentLease {
    /// The annotation holding the loaded ``AgentConfiguration/revision``.
    public static let revisionAnnotation = "profiling.hearth.dev/config-revision"
    /// Present while the node profiles at a coarser grain than asked because a map was full (for example nested
    /// cgroups the filter could not hold): what happened, in one line. Absent when the node is not degraded.
    public static let degradedAnnotation = "profiling.hearth.dev/degraded"
    /// Labels on every agent Lease; the operator watches by them.
    public static let labels = ["app.kubernetes.io/name": "hearth-agent", "app.kubernetes.io/component": "node-lease"]
    public static let labelSelector = "app.kubernetes.io/component=node-lease,app.kubernetes.io/name=hearth-agent"
    /// How long a Lease holds without renewal, and how often agents renew (kubelet: 40 s and 10 s).
    public static let durationSeconds = 40
    public static let renewInterval: Duration = .seconds(10)

    /// The Lease name of a node's agent.
    public static func name(node: String) -> String { "hearth-agent-\(node)" }

    /// The revision a Lease reports.
    public static func revision(of lease: Lease) -> String? {
        lease.metadata.annotations?[Self.revisionAnnotation]
    }

    /// Whether the Lease was renewed within its duration.
    public static func isFresh(_ lease: Lease, now: Date = Date()) -> Bool {
        guard let text = lease.spec.renewTime, let renewed = KubeTime.parse(text) else { return false }
        let duration = Double(lease.spec.leaseDurationSeconds ?? Self.durationSeconds)
        return now.timeIntervalSince(renewed) <= duration
    }
}
