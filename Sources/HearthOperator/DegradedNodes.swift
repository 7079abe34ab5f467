// DegradedNodes.swift: the agents that report themselves degraded (`AgentLease.degradedAnnotation`: a full map
// makes them profile at a coarser grain) on the nodes running a target's pods, as the target's status shows them,
// and which targets a change of such a report concerns.
//
// The annotation is written from a node, so it is never trusted: it is read bounded
// (`AgentLease.boundedDegradation`), and a status lists at most `AgentStatus.maxListedDegradedNodes` nodes.

import Foundation
import HearthAPI
import KubeModel
import KubeRuntime

/// The degraded agents among the nodes that matter to one target.
public struct DegradedNodes: Sendable, Hashable {
    /// All of them.
    public var count: Int
    /// The first few by node name, with their reports.
    public var listed: [DegradedNode]

    public static let none = DegradedNodes(reasons: [:])

    /// From every degraded node (node → bounded reason).
    public init(reasons: [String: String]) {
        self.count = reasons.count
        self.listed = reasons.sorted { $0.key < $1.key }.prefix(AgentStatus.maxListedDegradedNodes).map {
            DegradedNode(node: $0.key, reason: $0.value)
        }
    }

    /// The degraded agents on the nodes running `pods` (a target's): those whose node Lease (`lease(name)`) is
    /// fresh and reports a degradation. A stale Lease no longer speaks for its node, so it does not count.
    public static func among(
        _ pods: some Sequence<Pod>,
        now: Date = Date(),
        lease: (String) -> Lease?
    ) -> DegradedNodes {
        var reasons: [String: String] = [:]
        for node in Set(pods.compactMap { $0.isFinished ? nil : $0.spec.nodeName }) {
            guard let lease = lease(AgentLease.name(node: node)), AgentLease.isFresh(lease, now: now),
                let reason = AgentLease.degradation(of: lease)
            else { continue }
            reasons[node] = reason
        }
        return DegradedNodes(reasons: reasons)
    }

    /// Writes the count, and the list when there is one, into the agent status.
    func report(in agent: inout AgentStatus) {
        agent.degradedNodes = self.count
        agent.degraded = self.listed.isEmpty ? nil : self.listed
    }

    /// The AgentDegraded condition. Unknown, with AgentRolledOut's reason, while no agent runs the target: nothing
    /// is known of its agents then. True names at most three nodes (the status lists more).
    func condition(agent known: Bool, rolledOut: Condition?) -> (status: Bool?, reason: String, message: String) {
        guard known else {
            let why = (rolledOut?.message).flatMap { $0.isEmpty ? nil : ": " + $0 } ?? ""
            return (nil, rolledOut?.reason ?? ConditionReason.agentPending, "no agent profiles this target yet" + why)
        }
        guard self.count > 0 else {
            return (false, ConditionReason.notDegraded, "no agent on a node running this target's pods is degraded")
        }
        let named = self.listed.prefix(3).map { "\($0.node ?? ""): \($0.reason ?? "")" }
        let more = self.count > named.count ? "; and \(self.count - named.count) more" : ""
        let nodes = self.count == 1 ? "1 node runs" : "\(self.count) nodes run"
        return (
            true, ConditionReason.nodesDegraded,
            "\(nodes) this target's pods with a degraded agent, profiled at a coarser grain than asked: "
                + named.joined(separator: "; ") + more
        )
    }
}

extension DegradedNodes {
    /// Targets with unfinished pods on `node`: those whose status a change of that node's report changes.
    static func targets(onNode node: String, pods: Store<Pod>, targets: Store<ProfilingTarget>) -> [ObjectKey] {
        var keys = Set<ObjectKey>()
        for pod in pods.byIndex("node", node) where !pod.isFinished {
            for target in targets.byIndex("namespace", pod.metadata.namespace ?? "")
            where (target.spec.selector ?? LabelSelector()).matches(pod.metadata.labels) {
                keys.insert(target.objectKey)
            }
        }
        return keys.sorted()
    }
}

extension OperatorStores {
    /// An agent Lease without managedFields, its degradation bounded: the report is written from a node, and a
    /// large one on every node must not grow the cache.
    @Sendable static func leaseWithBoundedDegradation(_ lease: Lease) -> Lease {
        var kept = Store<Lease>.stripManagedFields(lease)
        if kept.metadata.annotations?[AgentLease.degradedAnnotation] != nil {
            kept.metadata.annotations?[AgentLease.degradedAnnotation] = AgentLease.degradation(of: lease)
        }
        return kept
    }
}

extension Pod {
    /// Succeeded or Failed: its containers are gone, so no agent profiles it.
    var isFinished: Bool { self.status.phase == "Succeeded" || self.status.phase == "Failed" }
}
