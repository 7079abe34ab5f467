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
    /// The longest degradation the operator keeps, in Unicode scalars (what a CRD's `maxLength` counts).
    public static let maxDegradationLength = 256
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

    /// The node a Lease name belongs to (``name(node:)`` backwards); nil for a name agents do not use.
    public static func node(leaseName: String) -> String? {
        let prefix = Self.name(node: "")
        guard leaseName.hasPrefix(prefix), leaseName.count > prefix.count else { return nil }
        return String(leaseName.dropFirst(prefix.count))
    }

    /// The degradation a Lease reports, bounded (``boundedDegradation(_:)``); nil when absent or blank.
    public static func degradation(of lease: Lease) -> String? {
        lease.metadata.annotations?[Self.degradedAnnotation].flatMap(Self.boundedDegradation)
    }

    /// `text` as one line of at most ``maxDegradationLength`` scalars, or nil when nothing printable is left. The
    /// annotation is written from a node, so it is not trusted: control and format characters (newlines, terminal
    /// escapes, bidirectional overrides) and runs of white space become one space, and a longer text is cut and
    /// ends in "…". Only the head is read, so a 256 KiB annotation costs what a short one does. Idempotent.
    public static func boundedDegradation(_ text: String) -> String? {
        let limit = Self.maxDegradationLength
        var kept: [Unicode.Scalar] = []
        var space = false
        var cut = false
        for scalar in text.unicodeScalars {
            let category = scalar.properties.generalCategory
            if scalar.properties.isWhitespace || category == .control || category == .format {
                space = !kept.isEmpty
                continue
            }
            if kept.count + (space ? 2 : 1) > limit {
                cut = true
                break
            }
            if space { kept.append(" ") }
            space = false
            kept.append(scalar)
        }
        if cut {
            kept.removeLast(max(0, kept.count - (limit - 1)))
            while kept.last == " " { kept.removeLast() }
            kept.append("…")
        }
        return kept.isEmpty ? nil : String(String.UnicodeScalarView(kept))
    }

    /// Whether the Lease was renewed within its duration.
    public static func isFresh(_ lease: Lease, now: Date = Date()) -> Bool {
        guard let text = lease.spec.renewTime, let renewed = KubeTime.parse(text) else { return false }
        let duration = Double(lease.spec.leaseDurationSeconds ?? Self.durationSeconds)
        return now.timeIntervalSince(renewed) <= duration
    }
}
