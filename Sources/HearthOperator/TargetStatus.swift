// TargetStatus.swift: the condition state machine of a ProfilingTarget, as a pure function of what the reconciler
// observed (table-tested). kstatus: Ready is True only when everything holds, False on a definite failure, and
// Unknown while work is in progress (so also on first sight); Reconciling mirrors "in progress", Stalled means
// "the user must change something".

import Foundation
import HearthAPI
import KubeModel

/// The agent DaemonSet's rollout as the target sees it.
public enum AgentRollout: Sendable, Hashable {
    /// The running configuration does not include this target's current entry yet.
    case pending
    /// Included; the DaemonSet is still rolling out.
    case progressing(desired: Int, ready: Int, message: String)
    /// Included and every node runs it.
    case complete(desired: Int, ready: Int)
}

/// Everything a status is computed from.
public struct TargetObservation: Sendable {
    public var generation: Int64
    public var resolved: ResolvedTarget
    public var probe: ProbeResult?
    public var rollout: AgentRollout
    public var matchedPods: Int
    public var datasource: DatasourceOutcome
    /// Writing the agent objects failed: the target cannot be part of the running configuration yet.
    public var agentProblem: TargetProblem?
    /// Degraded agents on the nodes running the target's pods.
    public var degradedNodes: DegradedNodes

    public init(
        generation: Int64,
        resolved: ResolvedTarget,
        probe: ProbeResult?,
        rollout: AgentRollout,
        matchedPods: Int,
        datasource: DatasourceOutcome = .notRequested,
        agentProblem: TargetProblem? = nil,
        degradedNodes: DegradedNodes = .none
    ) {
        self.generation = generation
        self.resolved = resolved
        self.probe = probe
        self.rollout = rollout
        self.matchedPods = matchedPods
        self.datasource = datasource
        self.agentProblem = agentProblem
        self.degradedNodes = degradedNodes
    }
}

public enum TargetStatusComputer {
    /// The new status; conditions keep their lastTransitionTime unless their status flips.
    public static func compute(
        _ observation: TargetObservation,
        previous: ProfilingTargetStatus,
        now: Date = Date()
    ) -> ProfilingTargetStatus {
        let generation = observation.generation
        let resolved = observation.resolved
        var conditions = previous.conditions ?? []
        func set(_ type: String, _ value: Bool?, _ reason: String, _ message: String) {
            conditions.set(
                Condition(
                    type: type,
                    status: Condition.status(value),
                    reason: reason,
                    message: String(message.prefix(32768)),
                    observedGeneration: generation,
                    lastTransitionTime: now
                )
            )
        }

        let invalid = !resolved.violations.isEmpty
        let invalidMessage = "invalid spec: " + resolved.violations.map(\.description).joined(separator: "; ")

        // Stalled.
        if invalid {
            set(ConditionType.stalled, true, ConditionReason.invalidSpec, invalidMessage)
        } else {
            set(ConditionType.stalled, false, ConditionReason.notStalled, "")
        }

        // PyroscopeReachable.
        if invalid {
            set(ConditionType.pyroscopeReachable, nil, ConditionReason.invalidSpec, "not probed: the spec is invalid")
        } else if resolved.suspended {
            set(ConditionType.pyroscopeReachable, nil, ConditionReason.suspended, "not probed: the target is suspended")
        } else if let problem = resolved.backendProblem {
            set(ConditionType.pyroscopeReachable, false, problem.reason, problem.message)
        } else if let probe = observation.probe {
            set(
                ConditionType.pyroscopeReachable,
                probe.reachable,
                probe.reachable ? ConditionReason.reachable : ConditionReason.unreachable,
                probe.message
            )
        } else {
            set(ConditionType.pyroscopeReachable, nil, ConditionReason.notProbed, "Pyroscope has not been probed yet")
        }

        // AgentRolledOut.
        var rolloutDone = false
        var agent: AgentStatus?
        if invalid {
            set(
                ConditionType.agentRolledOut,
                false,
                ConditionReason.invalidSpec,
                "not part of the agent configuration: the spec is invalid"
            )
        } else if resolved.suspended {
            set(
                ConditionType.agentRolledOut,
                false,
                ConditionReason.suspended,
                "not part of the agent configuration: spec.suspend is true"
            )
        } else if let problem = resolved.credentialProblem {
            set(
                ConditionType.agentRolledOut,
                false,
                problem.reason,
                "not part of the agent configuration: " + problem.message
            )
        } else if resolved.entry == nil, let problem = resolved.backendProblem {
            set(
                ConditionType.agentRolledOut,
                false,
                problem.reason,
                "not part of the agent configuration: " + problem.message
            )
        } else if let problem = observation.agentProblem {
            set(ConditionType.agentRolledOut, false, problem.reason, problem.message)
        } else {
            switch observation.rollout {
            case .pending:
                set(
                    ConditionType.agentRolledOut,
                    false,
                    ConditionReason.agentPending,
                    "the agent configuration does not include this target yet"
                )
            case .progressing(let desired, let ready, let message):
                agent = AgentStatus(desiredNodes: desired, readyNodes: ready)
                set(ConditionType.agentRolledOut, false, ConditionReason.agentRollingOut, message)
            case .complete(let desired, let ready):
                agent = AgentStatus(desiredNodes: desired, readyNodes: ready)
                rolloutDone = true
                set(
                    ConditionType.agentRolledOut,
                    true,
                    ConditionReason.agentRolledOut,
                    "\(ready)/\(desired) nodes run an agent configuration that includes this target"
                )
            }
        }

        // AgentDegraded: independent of Ready (a degraded agent still profiles).
        let degraded = observation.degradedNodes.condition(
            agent: agent != nil,
            rolledOut: conditions[type: ConditionType.agentRolledOut]
        )
        set(ConditionType.agentDegraded, degraded.status, degraded.reason, degraded.message)
        if var known = agent {
            observation.degradedNodes.report(in: &known)
            agent = known
        }

        // DatasourceSynced: independent of Ready (a Grafana problem never stops profiles from flowing).
        var grafana = previous.grafana
        if invalid {
            set(
                ConditionType.datasourceSynced,
                nil,
                ConditionReason.invalidSpec,
                "not provisioned: the spec is invalid"
            )
        } else {
            switch observation.datasource {
            case .notRequested:
                grafana = nil
                set(ConditionType.datasourceSynced, nil, ConditionReason.datasourceNotRequested, "no spec.grafana")
            case .synced(let uid, let name):
                grafana = GrafanaStatus(uid: uid, name: name)
                set(
                    ConditionType.datasourceSynced,
                    true,
                    ConditionReason.datasourceSynced,
                    "Grafana datasource \"\(name)\" (uid \(uid)) matches"
                )
            case .failed(let reason, let message):
                set(ConditionType.datasourceSynced, false, reason, message)
            case .pending(let reason, let message):
                set(ConditionType.datasourceSynced, nil, reason, message)
            }
        }

        // Ready: the first definite failure, else in progress, else done.
        let ready: (Bool?, String, String)
        if invalid {
            ready = (false, ConditionReason.invalidSpec, invalidMessage)
        } else if resolved.suspended {
            ready = (false, ConditionReason.suspended, "spec.suspend is true: the agent does not profile this target")
        } else if let problem = resolved.credentialProblem {
            ready = (false, problem.reason, problem.message)
        } else if let problem = resolved.backendProblem {
            ready = (false, problem.reason, problem.message)
        } else if let problem = observation.agentProblem {
            ready = (false, problem.reason, problem.message)
        } else if let probe = observation.probe, !probe.reachable {
            ready = (false, ConditionReason.unreachable, "Pyroscope is not ready: " + probe.message)
        } else if !rolloutDone {
            let message: String
            switch observation.rollout {
            case .pending: message = "waiting for the agent configuration to include this target"
            case .progressing(_, _, let text): message = "agent rolling out: " + text
            case .complete: message = ""
            }
            ready = (nil, ConditionReason.agentRollingOut, message)
        } else if observation.probe == nil {
            ready = (nil, ConditionReason.notProbed, "Pyroscope has not been probed yet")
        } else {
            ready = (
                true, ConditionReason.reconciled,
                "profiles of \(observation.matchedPods) pods flow to \(resolved.pyroscopeURL ?? "Pyroscope")"
            )
        }
        set(ConditionType.ready, ready.0, ready.1, ready.2)
        set(
            ConditionType.reconciling,
            ready.0 == nil,
            ready.0 == nil ? ConditionReason.progressing : ConditionReason.done,
            ready.0 == nil ? ready.2 : ""
        )

        // Stable order: the documented one.
        conditions.sort {
            (ConditionType.all.firstIndex(of: $0.type ?? "") ?? 99)
                < (ConditionType.all.firstIndex(of: $1.type ?? "") ?? 99)
        }
        var status = previous
        status.observedGeneration = generation
        status.conditions = conditions
        status.matchedPods = observation.matchedPods
        status.agent = agent
        status.pyroscopeURL = resolved.pyroscopeURL
        status.grafana = grafana
        return status
    }
}
