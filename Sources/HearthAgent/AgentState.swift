// AgentState.swift: what the node agent's services share: the configuration in force (the last good one), why
// the file on disk is not in force when it is broken, and change counters the sampling loop polls. A state
// machine behind a Mutex; no service holds another's internals.

import Foundation
import HearthAPI
import Synchronization

/// The node agent's shared state.
public final class AgentState: Sendable {
    struct Values {
        var configuration: AgentConfiguration?
        var configurationProblem: String?
        /// Bumped on every new configuration and every pod change: the sampling loop re-attributes when it moves.
        var generation: UInt64 = 0
        var samplerRunning = false
        var samplerProblem: String?
        var lastDrain: ContinuousClock.Instant?
        var targetedContainers = 0
        /// Why this node profiles at a coarser grain than asked, by kind (reported in the node Lease).
        var degradations: [Degradation: String] = [:]
    }

    /// A way the node keeps profiling at a coarser grain because a map or tree was full.
    public enum Degradation: String, Sendable, CaseIterable {
        case cgroupsNotHeld
        case stalledFiles
    }

    /// Records (or clears, with nil) one degradation.
    func setDegradation(_ kind: Degradation, _ message: String?) {
        self.values.withLock { $0.degradations[kind] = message }
    }

    /// The node's degradations in one line, or nil when there is none: what the node Lease reports.
    public var degradation: String? {
        self.values.withLock { values in
            let messages = Degradation.allCases.compactMap { values.degradations[$0] }
            return messages.isEmpty ? nil : messages.joined(separator: "; ")
        }
    }

    private let values = Mutex(Values())

    public init() {}

    /// The configuration in force, if one was ever loaded.
    public var configuration: AgentConfiguration? { self.values.withLock { $0.configuration } }
    /// The revision in force (reported in the node Lease).
    public var revision: String? { self.values.withLock { $0.configuration?.revision } }
    public var generation: UInt64 { self.values.withLock { $0.generation } }
    public var targetedContainers: Int { self.values.withLock { $0.targetedContainers } }

    func load(_ configuration: AgentConfiguration) {
        self.values.withLock {
            $0.configuration = configuration
            $0.configurationProblem = nil
            $0.generation &+= 1
        }
    }

    /// The file on disk cannot be used; the last good configuration stays in force.
    func reject(_ problem: String) {
        self.values.withLock { $0.configurationProblem = problem }
    }

    func podsChanged() {
        self.values.withLock { $0.generation &+= 1 }
    }

    func samplerStarted() {
        self.values.withLock {
            $0.samplerRunning = true
            $0.samplerProblem = nil
        }
    }

    func samplerFailed(_ problem: String) {
        self.values.withLock {
            $0.samplerRunning = false
            $0.samplerProblem = problem
        }
    }

    func drained(targetedContainers: Int) {
        self.values.withLock {
            $0.lastDrain = .now
            $0.targetedContainers = targetedContainers
        }
    }

    /// `/readyz`: a configuration is in force, the file on disk is the one in force, and the sampler runs.
    public func readiness() -> (ready: Bool, message: String) {
        self.values.withLock { values in
            if let problem = values.samplerProblem { return (false, "sampler: \(problem)") }
            guard let configuration = values.configuration else {
                return (false, "no configuration loaded yet" + (values.configurationProblem.map { ": \($0)" } ?? ""))
            }
            if let problem = values.configurationProblem {
                return (
                    false,
                    "configuration file rejected, revision \(configuration.revision) stays in force: \(problem)"
                )
            }
            guard values.samplerRunning else { return (false, "sampler starting") }
            return (
                true,
                "ok: revision \(configuration.revision), \(configuration.targets.count) targets, "
                    + "\(values.targetedContainers) containers on this node"
            )
        }
    }

    /// `/healthz`: the sampling loop drained within `stallAfter` (or has not started yet).
    public func liveness(stallAfter: Duration) -> (alive: Bool, message: String) {
        self.values.withLock { values in
            guard let last = values.lastDrain else { return (true, "ok: starting") }
            let age = last.duration(to: .now)
            return age <= stallAfter ? (true, "ok") : (false, "the sampling loop has not drained for \(age)")
        }
    }
}
