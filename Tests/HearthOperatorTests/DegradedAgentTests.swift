// DegradedAgentTests.swift: agents that report themselves degraded in their node Lease show in the status of the
// targets with pods on their node (issue 16): which nodes count, the bounds, the condition, and which Lease events
// reconcile. Unit tests first, then the operator against an in-process kube-test-server.

import Foundation
import HearthAPI
import HearthTestSupport
import KubeClient
import KubeModel
import KubeRuntime
import Testing

@testable import HearthOperator

let cgroupsNotHeld = "12 nested cgroups not held by the filter map (counted under their container)"

func makePod(_ name: String, namespace: String = "shop", app: String = "checkout", node: String?) -> Pod {
    var pod = Pod(name: name, namespace: namespace)
    pod.metadata.labels = ["app": app]
    pod.object["spec"] = ["containers": [["name": "app", "image": .string("shop/\(app):1")]]]
    pod.spec.nodeName = node
    return pod
}

func makeAgentLease(
    node: String,
    revision: String = "0123456789abcdef",
    degradation: String?,
    renewed: Date
) -> Lease {
    var lease = Lease(name: AgentLease.name(node: node), namespace: "hearth-system")
    lease.metadata.labels = AgentLease.labels
    lease.metadata.annotations = [AgentLease.revisionAnnotation: revision]
    lease.metadata.annotations?[AgentLease.degradedAnnotation] = degradation
    lease.spec.holderIdentity = node
    lease.spec.leaseDurationSeconds = AgentLease.durationSeconds
    lease.spec.renewTime = KubeTime.formatMicro(renewed)
    return lease
}

@Suite("Degraded agents")
struct DegradedNodesTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    @Test("only fresh Leases of nodes running the target's unfinished pods count; the list is sorted and bounded")
    func whichNodesCount() {
        var pods = (0..<14).map { makePod("checkout-\($0)", node: "node-\($0)") }
        pods.append(makePod("checkout-again", node: "node-0"))
        pods.append(makePod("unscheduled", node: nil))
        var finished = makePod("finished", node: "node-20")
        finished.status.phase = "Succeeded"
        pods.append(finished)
        var leases: [String: Lease] = [:]
        for node in (0..<14).map({ "node-\($0)" }) + ["node-20", "node-30"] {
            leases[AgentLease.name(node: node)] = makeAgentLease(
                node: node,
                degradation: cgroupsNotHeld,
                renewed: Self.now
            )
        }
        // node-5's agent stopped renewing: its Lease no longer speaks for the node. node-6 is not degraded.
        leases[AgentLease.name(node: "node-5")] = makeAgentLease(
            node: "node-5",
            degradation: cgroupsNotHeld,
            renewed: Self.now.addingTimeInterval(-Double(AgentLease.durationSeconds) - 1)
        )
        leases[AgentLease.name(node: "node-6")] = makeAgentLease(node: "node-6", degradation: nil, renewed: Self.now)

        let degraded = DegradedNodes.among(pods, now: Self.now) { leases[$0] }
        let expected = (0..<14).filter { $0 != 5 && $0 != 6 }.map { "node-\($0)" }.sorted()
        #expect(degraded.count == 12)
        #expect(degraded.listed.compactMap(\.node) == Array(expected.prefix(AgentStatus.maxListedDegradedNodes)))
        #expect(degraded.listed.allSatisfy { $0.reason == cgroupsNotHeld })
        #expect(DegradedNodes.among([Pod](), now: Self.now) { leases[$0] } == .none)
    }

    @Test("a 100 KiB report is cut to the bound before it reaches the status")
    func bounded() throws {
        let huge = String(repeating: "x", count: 100 * 1024)
        let lease = makeAgentLease(node: "node-0", degradation: huge, renewed: Self.now)
        let degraded = DegradedNodes.among([makePod("p", node: "node-0")], now: Self.now) { _ in lease }
        let reason = try #require(degraded.listed.first?.reason)
        #expect(reason.unicodeScalars.count == AgentLease.maxDegradationLength && reason.hasSuffix("…"))
    }

    static func status(
        _ degraded: DegradedNodes,
        rollout: AgentRollout = .complete(desired: 3, ready: 3)
    )
        -> ProfilingTargetStatus
    {
        TargetStatusComputer.compute(
            TargetObservation(
                generation: 2,
                resolved: TargetStatusTests.resolved(),
                probe: TargetStatusTests.ok,
                rollout: rollout,
                matchedPods: 4,
                degradedNodes: degraded
            ),
            previous: ProfilingTargetStatus(),
            now: Self.now
        )
    }

    @Test("AgentDegraded: True naming at most three nodes, False when none; Ready is the same either way")
    func condition() throws {
        let reasons = Dictionary(uniqueKeysWithValues: (0..<4).map { ("node-\($0)", "report \($0)") })
        let degraded = Self.status(DegradedNodes(reasons: reasons))
        let condition = try #require(degraded.condition(ConditionType.agentDegraded))
        #expect(condition.status == "True" && condition.reason == ConditionReason.nodesDegraded)
        let message = condition.message ?? ""
        #expect(message.contains("4 nodes run this target's pods with a degraded agent"), "\(message)")
        #expect(message.contains("node-0: report 0; node-1: report 1; node-2: report 2; and 1 more"), "\(message)")
        #expect(!message.contains("node-3"))
        #expect(degraded.agent?.degradedNodes == 4)
        #expect(degraded.agent?.degraded?.count == 4)
        #expect(degraded.agent?.readyNodes == 3)

        let healthy = Self.status(.none)
        let clear = try #require(healthy.condition(ConditionType.agentDegraded))
        #expect(clear.status == "False" && clear.reason == ConditionReason.notDegraded)
        #expect(healthy.agent?.degradedNodes == 0)
        #expect(healthy.agent?.degraded == nil)
        // A degraded agent still profiles: Ready does not change.
        #expect(degraded.condition(ConditionType.ready) == healthy.condition(ConditionType.ready))
        #expect(degraded.condition(ConditionType.ready)?.status == "True")
        #expect((degraded.conditions ?? []).map(\.type) == ConditionType.all)
    }

    @Test("AgentDegraded is Unknown, with AgentRolledOut's reason, while no agent runs the target")
    func unknownBeforeRollout() throws {
        let pending = Self.status(DegradedNodes(reasons: ["node-0": "x"]), rollout: .pending)
        let condition = try #require(pending.condition(ConditionType.agentDegraded))
        #expect(condition.status == "Unknown" && condition.reason == ConditionReason.agentPending)
        #expect(condition.message?.hasPrefix("no agent profiles this target yet: ") == true)
        #expect(pending.agent == nil)

        let invalid = TargetStatusComputer.compute(
            TargetObservation(
                generation: 2,
                resolved: TargetStatusTests.resolved {
                    $0.violations = [SpecViolation(field: "spec.x", message: "bad")]
                    $0.entry = nil
                },
                probe: nil,
                rollout: .pending,
                matchedPods: 0,
                degradedNodes: DegradedNodes(reasons: ["node-0": "x"])
            ),
            previous: ProfilingTargetStatus()
        )
        #expect(invalid.condition(ConditionType.agentDegraded)?.reason == ConditionReason.invalidSpec)
        #expect(invalid.condition(ConditionType.agentDegraded)?.status == "Unknown")
    }

    @Test("Lease events: a renewal changes nothing; a degradation set, changed, cleared or deleted does")
    func leaseChanges() {
        let reported = ReportedLeases()
        typealias Change = ReportedLeases.Change
        var lease = makeAgentLease(node: "node-1", degradation: nil, renewed: Self.now)
        #expect(reported.change(lease, present: true) == Change(revision: true, degradation: false))
        lease.spec.renewTime = KubeTime.formatMicro(Self.now.addingTimeInterval(10))
        lease.metadata.resourceVersion = "2"
        #expect(reported.change(lease, present: true) == Change(revision: false, degradation: false))

        lease.metadata.annotations?[AgentLease.degradedAnnotation] = cgroupsNotHeld
        #expect(reported.change(lease, present: true) == Change(revision: false, degradation: true))
        lease.spec.renewTime = KubeTime.formatMicro(Self.now.addingTimeInterval(20))
        #expect(reported.change(lease, present: true) == Change(revision: false, degradation: false))
        lease.metadata.annotations?[AgentLease.degradedAnnotation] = "13" + cgroupsNotHeld.dropFirst(2)
        #expect(reported.change(lease, present: true) == Change(revision: false, degradation: true))

        // Reports that differ only past the bound show the same status: no reconcile for them.
        let head = String(repeating: "x", count: 1000)
        lease.metadata.annotations?[AgentLease.degradedAnnotation] = head + "a"
        #expect(reported.change(lease, present: true).degradation)
        lease.metadata.annotations?[AgentLease.degradedAnnotation] = head + "b"
        #expect(reported.change(lease, present: true) == Change(revision: false, degradation: false))

        lease.metadata.annotations?[AgentLease.degradedAnnotation] = nil
        #expect(reported.change(lease, present: true) == Change(revision: false, degradation: true))
        lease.metadata.annotations?[AgentLease.revisionAnnotation] = "fedcba9876543210"
        #expect(reported.change(lease, present: true) == Change(revision: true, degradation: false))

        // Deleted while degraded: the node's report is gone, so its targets reconcile; then it is forgotten.
        lease.metadata.annotations?[AgentLease.degradedAnnotation] = cgroupsNotHeld
        #expect(reported.change(lease, present: true).degradation)
        #expect(reported.change(lease, present: false) == Change(revision: false, degradation: true))
        #expect(reported.change(lease, present: true) == Change(revision: true, degradation: true))
    }

    @Test("a node's report concerns the targets with unfinished pods on that node only")
    func targetsOnNode() {
        let stores = OperatorStores()
        for target in [
            makeTarget("checkout"), makeTarget("frontend", app: "frontend"),
            makeTarget("billing", namespace: "other", app: "checkout"),
        ] {
            stores.targets.apply(.apply(target))
        }
        var finished = makePod("checkout-b", namespace: "other", node: "node-1")
        finished.status.phase = "Failed"
        for pod in [
            makePod("checkout-a", node: "node-1"), makePod("frontend-a", app: "frontend", node: "node-2"),
            makePod("checkout-c", node: "node-3"), finished,
        ] {
            stores.pods.apply(.apply(OperatorStores.podIdentityAndLabels(pod)))
        }
        func keys(_ node: String) -> [String] {
            DegradedNodes.targets(onNode: node, pods: stores.pods, targets: stores.targets).map(\.description)
        }
        #expect(keys("node-1") == ["shop/checkout"])
        #expect(keys("node-2") == ["shop/frontend"])
        #expect(keys("node-9") == [])
    }

    @Test("the Lease cache keeps a bounded report, and none for a blank one")
    func leaseCache() {
        var lease = makeAgentLease(
            node: "node-1",
            degradation: String(repeating: "y", count: 100 * 1024),
            renewed: Self.now
        )
        lease.metadata.managedFields = [ManagedFieldsEntry()]
        let cached = OperatorStores.leaseWithBoundedDegradation(lease)
        #expect(cached.metadata.managedFields == nil)
        #expect(cached.metadata.annotations?[AgentLease.degradedAnnotation]?.unicodeScalars.count == 256)
        #expect(AgentLease.revision(of: cached) == "0123456789abcdef")
        lease.metadata.annotations?[AgentLease.degradedAnnotation] = "\n\n"
        #expect(
            OperatorStores.leaseWithBoundedDegradation(lease).metadata.annotations?[AgentLease.degradedAnnotation]
                == nil
        )
    }
}

@Suite("Degraded agents on KubeTestServer", .timeLimit(.minutes(3)))
struct DegradedAgentIntegrationTests {
    @Test(
        "a degraded agent on a node running the target's pods shows in its status and AgentDegraded; clearing it clears them; Ready keeps its meaning"
    )
    func degradedAndCleared() async throws {
        try await OperatorHarness.with { h in
            let pods = h.client.resource(Pod.self, namespace: "shop")
            _ = try await pods.create(makePod("checkout-0", node: "node-0"))
            _ = try await pods.create(makePod("checkout-1", node: "node-1"))
            _ = try await pods.create(makePod("frontend-2", app: "frontend", node: "node-2"))
            _ = try await h.targets.inNamespace("shop").create(makeTarget("checkout"))
            try await h.waitFor("shop", "checkout", ConditionType.pyroscopeReachable, status: "True")
            try await h.markAgentRolledOut(nodes: 3)
            try await h.waitFor(
                "shop",
                "checkout",
                ConditionType.ready,
                status: "True",
                reason: ConditionReason.reconciled
            )
            try await h.waitFor(
                "shop",
                "checkout",
                ConditionType.agentDegraded,
                status: "False",
                reason: ConditionReason.notDegraded
            )
            #expect(try await h.target("shop", "checkout")?.status.agent?.degradedNodes == 0)

            // node-2 runs none of the target's pods: its agent's report is not the target's concern.
            try await h.renewAgentLease(node: 2, degradation: "7 nested cgroups not held")
            try await h.renewAgentLease(node: 1, degradation: cgroupsNotHeld)
            #expect(try await eventually { try await h.target("shop", "checkout")?.status.agent?.degradedNodes == 1 })
            let status = try #require(try await h.target("shop", "checkout")).status
            #expect(status.agent?.degraded == [DegradedNode(node: "node-1", reason: cgroupsNotHeld)])
            let condition = try #require(status.condition(ConditionType.agentDegraded))
            #expect(condition.status == "True" && condition.reason == ConditionReason.nodesDegraded)
            #expect(condition.message?.contains("node-1: " + cgroupsNotHeld) == true, "\(condition.message ?? "")")
            #expect(condition.message?.contains("node-2") == false)
            #expect(status.condition(ConditionType.ready)?.status == "True")
            #expect(status.condition(ConditionType.ready)?.reason == ConditionReason.reconciled)
            #expect(status.agent?.readyNodes == 3)

            // The agent clears its annotation: so does the status.
            try await h.renewAgentLease(node: 1, degradation: nil)
            try await h.waitFor(
                "shop",
                "checkout",
                ConditionType.agentDegraded,
                status: "False",
                reason: ConditionReason.notDegraded
            )
            let cleared = try #require(try await h.target("shop", "checkout")).status
            #expect(cleared.agent?.degradedNodes == 0)
            #expect(cleared.agent?.degraded == nil)
            #expect(cleared.condition(ConditionType.ready)?.status == "True")
        }
    }

    @Test("a 100 KiB report is cut to the bound in the status; a stale Lease is not counted")
    func boundedAndStale() async throws {
        try await OperatorHarness.with { h in
            let pods = h.client.resource(Pod.self, namespace: "shop")
            _ = try await pods.create(makePod("checkout-0", node: "node-0"))
            _ = try await pods.create(makePod("checkout-1", node: "node-1"))
            _ = try await h.targets.inNamespace("shop").create(makeTarget("checkout"))
            try await h.waitFor("shop", "checkout", ConditionType.pyroscopeReachable, status: "True")
            try await h.markAgentRolledOut(nodes: 2)
            try await h.waitFor("shop", "checkout", ConditionType.agentRolledOut, status: "True")

            // node-1's agent stopped renewing two minutes ago, degraded. Then node-0 reports a 100 KiB degradation:
            // the status that shows node-0 was computed after node-1's Lease was cached.
            try await h.renewAgentLease(node: 1, degradation: cgroupsNotHeld, renewed: Date().addingTimeInterval(-120))
            let huge = String(repeating: "nested cgroups not held; ", count: 100 * 1024 / 25)
            try await h.renewAgentLease(node: 0, degradation: huge)
            #expect(
                try await eventually {
                    try await h.target("shop", "checkout")?.status.agent?.degraded?.first?.node == "node-0"
                }
            )
            let status = try #require(try await h.target("shop", "checkout")).status
            #expect(status.agent?.degradedNodes == 1)
            #expect(status.agent?.degraded?.compactMap(\.node) == ["node-0"])
            let reason = try #require(status.agent?.degraded?.first?.reason)
            #expect(reason.unicodeScalars.count <= AgentLease.maxDegradationLength && reason.hasSuffix("…"))
            #expect(reason.hasPrefix("nested cgroups not held; nested"))
            let message = try #require(status.condition(ConditionType.agentDegraded)?.message)
            #expect(message.utf8.count < 1024, "the condition carries the bounded report, not the annotation")
        }
    }
}
