// ReconcilerIntegrationTests.swift: the operator against an in-process kube-test-server, one test per "Done when"
// bullet of issue 4.

import Foundation
import HearthAPI
import HearthOperator
import HearthTestSupport
import KubeClient
import KubeModel
import KubeRuntime
import KubeTestServer
import Synchronization
import Testing

@Suite("Reconciler on KubeTestServer", .timeLimit(.minutes(3)))
struct ReconcilerIntegrationTests {
    @Test("a target creates DaemonSet, ConfigMap, Secret, ServiceAccount and RBAC; Ready follows the rollout")
    func createsAgentObjects() async throws {
        try await OperatorHarness.with { h in
            _ = try await h.client.resource(Secret.self, namespace: "shop").create(makeSecret("pyro-auth"))
            _ = try await h.client.resource(Service.self, namespace: "observability").create(makeService("pyroscope"))
            let target = makeTarget(
                "checkout",
                serviceRef: ServiceReference(name: "pyroscope", namespace: "observability", port: 4040),
                passwordSecret: "pyro-auth"
            )
            _ = try await h.targets.inNamespace("shop").create(target)

            #expect(try await eventually { try await h.daemonSet() != nil })
            let namespace = h.configuration.namespace
            #expect(
                try await h.client.resource(ServiceAccount.self, namespace: namespace).getIfExists("hearth-agent")
                    != nil
            )
            #expect(try await h.client.resource(ClusterRole.self).getIfExists(h.configuration.clusterRoleName) != nil)
            let binding = try #require(
                try await h.client.resource(ClusterRoleBinding.self).getIfExists(h.configuration.clusterRoleName)
            )
            #expect(binding.subjects?.first?.name == "hearth-agent")
            #expect(binding.subjects?.first?.namespace == namespace)
            #expect(try await h.configuredTargets() == ["shop/checkout"])
            let secret = try #require(try await h.agentSecret())
            #expect(secret.data?["shop.checkout.password"] == Data("s3cr3t-value".utf8).base64EncodedString())
            let daemonSet = try #require(try await h.daemonSet())
            // Nothing in the pod template changes with targets: they reach the agents through the ConfigMap.
            #expect(daemonSet.spec.template.metadata.annotations == nil)
            #expect(try await h.agentConfiguration()?.revision.count == 16)
            #expect(
                try await h.client.resource(Role.self, namespace: namespace).getIfExists("hearth-agent")?.rules?.first?
                    .resources == ["leases"]
            )
            #expect(daemonSet.spec.template.spec.hostPID == true)
            #expect(daemonSet.metadata.managedFields?.contains { $0.manager == "hearth-operator" } == true)

            // Finalizer, first status: Unknown while the agent rolls out, observedGeneration on each condition.
            #expect(
                try await eventually {
                    try await h.target("shop", "checkout")?.metadata.finalizers == [ProfilingTarget.finalizer]
                }
            )
            try await h.waitFor(
                "shop",
                "checkout",
                ConditionType.ready,
                status: "Unknown",
                reason: ConditionReason.agentRollingOut
            )
            let status = try #require(try await h.target("shop", "checkout")).status
            #expect(status.observedGeneration == 1)
            #expect(Set((status.conditions ?? []).compactMap(\.type)) == Set(ConditionType.all))
            #expect(
                (status.conditions ?? []).allSatisfy {
                    $0.observedGeneration == 1 && ConditionReason.isValid($0.reason ?? "")
                }
            )
            #expect(status.pyroscopeURL == "http://pyroscope.observability.svc:4040")
            try await h.waitFor("shop", "checkout", ConditionType.reconciling, status: "True")
            try await h.waitFor("shop", "checkout", ConditionType.pyroscopeReachable, status: "True")
            try await h.waitFor(
                "shop",
                "checkout",
                ConditionType.datasourceSynced,
                status: "Unknown",
                reason: ConditionReason.datasourceNotRequested
            )

            // The DaemonSet controller reports the rollout: Ready.
            try await h.markAgentRolledOut(nodes: 3)
            try await h.waitFor(
                "shop",
                "checkout",
                ConditionType.ready,
                status: "True",
                reason: ConditionReason.reconciled
            )
            try await h.waitFor("shop", "checkout", ConditionType.reconciling, status: "False")
            let ready = try #require(try await h.target("shop", "checkout")).status
            #expect(ready.agent?.desiredNodes == 3)
            #expect(ready.agent?.readyNodes == 3)

            // Events only on transitions: one per Ready change, none for the no-op reconciles after it.
            await h.waitUntilIdle()
            let events = try await h.client.resource(Event.self, namespace: "shop").list().items
            let before = events.count
            #expect(before >= 1)
            await h.reconcileAndSettle([ObjectKey(namespace: "shop", name: "checkout")])
            #expect(try await h.client.resource(Event.self, namespace: "shop").list().items.count == before)

            // No secret value in status, events or config.
            let secretValue = "s3cr3t-value"
            let encoded = Data(secretValue.utf8).base64EncodedString()
            let statusText = KubeJSON.string(ready.json)
            #expect(!statusText.contains(secretValue) && !statusText.contains(encoded))
            for event in try await h.client.resource(Event.self, namespace: "shop").list().items {
                #expect(!(event.note ?? "").contains(secretValue))
            }
            let config = try #require(try await h.configMap()?.data?[AgentRenderer.configKey])
            #expect(!config.contains(secretValue) && !config.contains(encoded))
        }
    }

    @Test(
        "a spec change reaches the agents through the ConfigMap without rolling the DaemonSet; AgentRolledOut waits for the agents' Leases; a no-op reconcile writes nothing"
    )
    func specChangeAndNoOp() async throws {
        try await OperatorHarness.with { h in
            _ = try await h.targets.inNamespace("shop").create(makeTarget("checkout"))
            try await h.waitFor("shop", "checkout", ConditionType.pyroscopeReachable, status: "True")
            try await h.markAgentRolledOut(nodes: 3)
            try await h.waitFor("shop", "checkout", ConditionType.agentRolledOut, status: "True")
            await h.waitUntilIdle()
            let first = try #require(try await h.daemonSet())
            let firstRevision = try #require(try await h.agentConfiguration()).revision

            // No-op: reconciling the target and the agent again writes nothing at all.
            h.server.clearRequestLog()
            await h.reconcileAndSettle([ObjectKey(namespace: "shop", name: "checkout"), AgentKey])
            #expect(
                h.operatorWrites.isEmpty,
                "unexpected writes: \(h.operatorWrites.map { "\($0.method) \($0.path)" })"
            )

            // Spec change: a new configuration revision, the same DaemonSet generation (no pod restarts).
            var target = try #require(try await h.target("shop", "checkout"))
            target.spec.sampleRate = 19
            _ = try await h.targets.inNamespace("shop").update(target)
            #expect(try await eventually { try await h.agentConfiguration()?.revision != firstRevision })
            #expect(try await eventually { try await h.target("shop", "checkout")?.status.observedGeneration == 2 })
            let second = try #require(try await h.daemonSet())
            #expect(second.metadata.generation == first.metadata.generation)
            #expect(try await h.agentConfiguration()?.targets.first?.sampleRate == 19)

            // Agents still on the old revision: the target says so until they report the new one.
            try await h.waitFor("shop", "checkout", ConditionType.agentRolledOut, status: "False")
            let progressing = try #require(try await h.condition("shop", "checkout", ConditionType.agentRolledOut))
            #expect(progressing.message?.contains("0/3 agents run the configuration") == true)
            try await h.reportAgentRevision(nodes: 2)
            #expect(
                try await eventually {
                    try await h.condition("shop", "checkout", ConditionType.agentRolledOut)?.message?.contains(
                        "2/3 agents"
                    ) == true
                }
            )
            try await h.reportAgentRevision(nodes: 3)
            try await h.waitFor("shop", "checkout", ConditionType.agentRolledOut, status: "True")
            #expect(try await h.target("shop", "checkout")?.status.agent?.readyNodes == 3)
        }
    }

    @Test("a second target merges into the same DaemonSet; deleting the last target removes the agent objects")
    func mergeAndDelete() async throws {
        try await OperatorHarness.with { h in
            _ = try await h.targets.inNamespace("shop").create(makeTarget("checkout"))
            _ = try await h.targets.inNamespace("other").create(
                makeTarget("billing", namespace: "other", app: "billing")
            )
            #expect(try await eventually { try await h.configuredTargets() == ["other/billing", "shop/checkout"] })
            // The DaemonSet is applied after the ConfigMap.
            #expect(try await eventually { try await h.daemonSet() != nil })
            let daemonSets = try await h.client.resource(DaemonSet.self).list().items
            #expect(daemonSets.count == 1)

            // Delete one: it leaves the configuration, its finalizer goes, the agent stays.
            _ = try await h.targets.inNamespace("shop").delete("checkout")
            #expect(try await eventually { try await h.target("shop", "checkout") == nil })
            #expect(try await eventually { try await h.configuredTargets() == ["other/billing"] })
            #expect(try await h.daemonSet() != nil)

            // Delete the last: every agent object is removed.
            _ = try await h.targets.inNamespace("other").delete("billing")
            #expect(try await eventually { try await h.target("other", "billing") == nil })
            #expect(try await eventually { try await h.daemonSet() == nil })
            let namespace = h.configuration.namespace
            #expect(try await eventually { try await h.configMap() == nil })
            #expect(try await eventually { try await h.agentSecret() == nil })
            #expect(
                try await eventually {
                    try await h.client.resource(ServiceAccount.self, namespace: namespace).getIfExists("hearth-agent")
                        == nil
                }
            )
            #expect(
                try await eventually {
                    try await h.client.resource(ClusterRole.self).getIfExists(h.configuration.clusterRoleName) == nil
                }
            )
            #expect(
                try await eventually {
                    try await h.client.resource(ClusterRoleBinding.self).getIfExists(h.configuration.clusterRoleName)
                        == nil
                }
            )
        }
    }

    @Test("labels and annotations set by another field manager survive the operator's applies")
    func foreignFieldsSurvive() async throws {
        try await OperatorHarness.with { h in
            _ = try await h.targets.inNamespace("shop").create(makeTarget("checkout"))
            #expect(try await eventually { try await h.daemonSet() != nil })
            await h.waitUntilIdle()
            let daemonSets = h.client.resource(DaemonSet.self, namespace: h.configuration.namespace)
            var foreign = DaemonSet(name: h.configuration.agentName, namespace: h.configuration.namespace)
            foreign.metadata.labels = ["team.example.com/owner": "platform"]
            foreign.metadata.annotations = ["kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"]
            var template = PodTemplateSpec()
            var meta = ObjectMeta()
            meta.annotations = ["sidecar.example.com/inject": "false"]
            template.metadata = meta
            var spec = DaemonSetSpec()
            spec.template = template
            foreign.spec = spec
            h.server.clearRequestLog()
            _ = try await daemonSets.apply(foreign, fieldManager: "platform-team")
            // The foreign change alone is no drift of the operator's fields: no write.
            await h.waitUntilIdle()
            #expect(h.operatorWrites.filter { $0.path.contains("daemonsets") }.isEmpty)

            // A target change reaches the agents through the ConfigMap alone: the DaemonSet is not written.
            var target = try #require(try await h.target("shop", "checkout"))
            target.spec.labels = ["team": "payments"]
            _ = try await h.targets.inNamespace("shop").update(target)
            #expect(
                try await eventually {
                    h.operatorWrites.contains { $0.path.contains("configmaps") && $0.verb == "patch" }
                }
            )
            await h.waitUntilIdle()
            #expect(h.operatorWrites.filter { $0.path.contains("daemonsets") }.isEmpty)

            // Drift of a field the operator owns makes it apply the DaemonSet again; the foreign fields stay.
            _ = try await daemonSets.patch(
                h.configuration.agentName,
                .merge(["spec": ["template": ["spec": ["hostPID": false]]]]),
                fieldManager: "kubectl-edit"
            )
            #expect(
                try await eventually {
                    h.operatorWrites.contains { $0.path.contains("daemonsets") && $0.verb == "patch" }
                }
            )
            #expect(try await eventually { try await h.daemonSet()?.spec.template.spec.hostPID == true })
            await h.waitUntilIdle()
            let live = try #require(try await h.daemonSet())
            #expect(live.metadata.labels?["team.example.com/owner"] == "platform")
            #expect(live.metadata.annotations?["kubectl.kubernetes.io/restartedAt"] == "2026-01-01T00:00:00Z")
            #expect(live.spec.template.metadata.annotations?["sidecar.example.com/inject"] == "false")
            #expect(live.metadata.labels?["app.kubernetes.io/managed-by"] == "hearth-operator")
        }
    }

    @Test("a missing Secret gives Ready=False SecretNotFound, and the target recovers when it appears")
    func missingSecretRecovers() async throws {
        try await OperatorHarness.with { h in
            _ = try await h.targets.inNamespace("shop").create(makeTarget("checkout", passwordSecret: "pyro-auth"))
            try await h.waitFor(
                "shop",
                "checkout",
                ConditionType.ready,
                status: "False",
                reason: ConditionReason.secretNotFound
            )
            let message = try await h.condition("shop", "checkout", ConditionType.ready)?.message ?? ""
            #expect(message.contains("shop/pyro-auth"))
            #expect(try await h.configuredTargets().isEmpty)

            _ = try await h.client.resource(Secret.self, namespace: "shop").create(makeSecret("pyro-auth"))
            try await h.waitFor(
                "shop",
                "checkout",
                ConditionType.ready,
                status: "Unknown",
                reason: ConditionReason.agentRollingOut
            )
            #expect(try await eventually { try await h.configuredTargets() == ["shop/checkout"] })
            #expect(try await eventually { try await h.agentSecret()?.data?["shop.checkout.password"] != nil })

            // A key that is missing is named as such.
            var secret = try #require(try await h.client.resource(Secret.self, namespace: "shop").get("pyro-auth"))
            secret.data = ["other": "eA=="]
            _ = try await h.client.resource(Secret.self, namespace: "shop").update(secret)
            try await h.waitFor(
                "shop",
                "checkout",
                ConditionType.ready,
                status: "False",
                reason: ConditionReason.secretKeyMissing
            )
        }
    }

    @Test("a failed apply of the agent objects (RBAC denial) shows in the target's status, and it recovers")
    func applyFailureVisible() async throws {
        try await OperatorHarness.with { h in
            // The API server denies writes of the agent ConfigMap several times, as RBAC without the verb would: with
            // three, the retries' backoff (a few milliseconds at first) could succeed before a poll saw the failure.
            h.server.injectFailures(
                code: 403,
                count: 8,
                pathContains: "/configmaps/hearth-agent-config",
                method: "PATCH"
            )
            _ = try await h.targets.inNamespace("shop").create(makeTarget("checkout"))
            // One snapshot of the status: the retries that follow (with backoff) may succeed between two reads.
            var failed: ProfilingTarget?
            #expect(
                try await eventually(timeout: .seconds(30)) {
                    let target = try await h.target("shop", "checkout")
                    let ready = target?.status.condition(ConditionType.ready)
                    guard ready?.status == "False", ready?.reason == ConditionReason.applyFailed else { return false }
                    failed = target
                    return true
                }
            )
            let ready = try #require(failed?.status.condition(ConditionType.ready))
            #expect(ready.message?.contains("server-side apply of ConfigMap/hearth-agent-config failed") == true)
            #expect(ready.message?.contains("403") == true, "\(ready.message ?? "")")
            let rolledOut = try #require(failed?.status.condition(ConditionType.agentRolledOut))
            #expect(rolledOut.status == "False" && rolledOut.reason == ConditionReason.applyFailed)
            // Retried with backoff until the writes go through.
            #expect(
                try await eventually(timeout: .seconds(30)) { try await h.configuredTargets() == ["shop/checkout"] }
            )
            try await h.waitFor(
                "shop",
                "checkout",
                ConditionType.ready,
                status: "Unknown",
                reason: ConditionReason.agentRollingOut
            )
        }
    }

    @Test("a missing Pyroscope Service gives PyroscopeReachable=False; an unreachable one says so")
    func missingService() async throws {
        try await OperatorHarness.with { h in
            let reference = ServiceReference(name: "pyroscope", namespace: "observability", port: 4040)
            _ = try await h.targets.inNamespace("shop").create(makeTarget("checkout", serviceRef: reference))
            try await h.waitFor(
                "shop",
                "checkout",
                ConditionType.pyroscopeReachable,
                status: "False",
                reason: ConditionReason.serviceNotFound
            )
            try await h.waitFor(
                "shop",
                "checkout",
                ConditionType.ready,
                status: "False",
                reason: ConditionReason.serviceNotFound
            )
            #expect(
                try await h.condition("shop", "checkout", ConditionType.ready)?.message?.contains(
                    "observability/pyroscope"
                ) == true
            )

            // The Service appears with another port, then the right one; then the backend stops answering.
            _ = try await h.client.resource(Service.self, namespace: "observability").create(
                makeService("pyroscope", port: 9999)
            )
            try await h.waitFor(
                "shop",
                "checkout",
                ConditionType.pyroscopeReachable,
                status: "False",
                reason: ConditionReason.servicePortNotFound
            )
            var service = try #require(
                try await h.client.resource(Service.self, namespace: "observability").get("pyroscope")
            )
            service.spec = makeService("pyroscope").spec
            _ = try await h.client.resource(Service.self, namespace: "observability").update(service)
            try await h.waitFor("shop", "checkout", ConditionType.pyroscopeReachable, status: "True")
            h.prober.reachable.withLock { $0 = false }
            h.queue.add(ObjectKey(namespace: "shop", name: "checkout"))
            try await h.waitFor(
                "shop",
                "checkout",
                ConditionType.pyroscopeReachable,
                status: "False",
                reason: ConditionReason.unreachable
            )
            try await h.waitFor(
                "shop",
                "checkout",
                ConditionType.ready,
                status: "False",
                reason: ConditionReason.unreachable
            )
        }
    }

    @Test("a target cannot select pods in another namespace")
    func otherNamespaceImpossible() async throws {
        try await OperatorHarness.with { h in
            // The schema has no namespace anywhere in the selector: such fields are pruned (or rejected by strict
            // field validation), and the agent configuration carries the target's own namespace.
            var target = makeTarget("sneaky")
            target.object["spec"]?.setValue(.string("kube-system"), at: ["selector", "namespace"])
            target.object["spec"]?.setValue(
                ["matchLabels": ["kubernetes.io/metadata.name": "kube-system"]],
                at: ["namespaceSelector"]
            )
            target.object["spec"]?.setValue(.string("kube-system"), at: ["namespace"])
            let created = try await h.targets.inNamespace("shop").create(target)
            #expect(created.object["spec"]?["namespace"] == nil)
            #expect(created.object["spec"]?["namespaceSelector"] == nil)
            #expect(created.object["spec"]?["selector"]?["namespace"] == nil)
            #expect(try await eventually { try await h.configuredTargets() == ["shop/sneaky"] })
            let config = try #require(try await h.configMap()?.data?[AgentRenderer.configKey])
            #expect(!config.contains("kube-system"))

            // Credentials are read from the target's namespace only: a Secret of the same name elsewhere is ignored.
            _ = try await h.client.resource(Secret.self, namespace: "other").create(
                makeSecret("pyro-auth", namespace: "other")
            )
            _ = try await h.targets.inNamespace("shop").create(makeTarget("borrower", passwordSecret: "pyro-auth"))
            try await h.waitFor(
                "shop",
                "borrower",
                ConditionType.ready,
                status: "False",
                reason: ConditionReason.secretNotFound
            )
        }
    }

    @Test("an invalid spec (CEL rule violated) is Stalled with a message naming the field")
    func invalidSpecStalls() async throws {
        try await OperatorHarness.with { h in
            var target = makeTarget("both")
            target.spec.pyroscope?.serviceRef = ServiceReference(name: "pyroscope")
            _ = try await h.targets.inNamespace("shop").create(target)
            try await h.waitFor(
                "shop",
                "both",
                ConditionType.stalled,
                status: "True",
                reason: ConditionReason.invalidSpec
            )
            try await h.waitFor(
                "shop",
                "both",
                ConditionType.ready,
                status: "False",
                reason: ConditionReason.invalidSpec
            )
            let message = try await h.condition("shop", "both", ConditionType.stalled)?.message ?? ""
            #expect(message.contains("exactly one of pyroscope.serviceRef and pyroscope.url"))
            #expect(try await h.daemonSet() == nil)
        }
    }
}
