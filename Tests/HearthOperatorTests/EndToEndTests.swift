// EndToEndTests.swift: the built `hearth-operator` against the `kube-test-server` executable, driven by the real
// kubectl with the repository's crds/ and manifests/samples/: what a user does, including leader fail-over.

import AsyncHTTPClient
import Foundation
import GrafanaTestServer
import HearthTestSupport
import NIOCore
import NIOHTTP1
import Testing

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

extension OperatorProcess {
    /// `(status, body)` of a GET on this replica.
    func get(_ url: String) async throws -> (Int, String) {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 4 << 20)
        return (Int(response.status.code), String(buffer: body))
    }

    /// The series of /metrics whose name and labels start with `prefix`, with their values.
    func metrics(_ prefix: String) async throws -> [(String, Double)] {
        let (_, body) = try await self.get(self.metricsURL + "/metrics")
        return body.split(separator: "\n").filter { $0.hasPrefix(prefix) }.compactMap { line in
            let parts = line.split(separator: " ")
            return Double(parts.last ?? "").map { (String(parts[0]), $0) }
        }
    }

    /// The value of one series in /metrics (nil when the series is absent).
    func metric(_ series: String) async throws -> Double? {
        try await self.metrics(series + " ").first?.1
    }

    /// Reconciles so far, whatever their result (success, requeue_after, error).
    func reconciles() async throws -> Double {
        try await self.metrics(#"controller_runtime_reconcile_total{controller="profilingtarget","#).map(\.1)
            .reduce(0, +)
    }
}

extension KubeTestServerProcess {
    /// kubectl arguments that print the agent configuration (targets.json of the agent ConfigMap).
    var agentConfigurationQuery: [String] {
        ["get", "configmap", "hearth-agent-config", "-n", "hearth-system", "-o", #"jsonpath={.data.targets\.json}"#]
    }

    /// kubectl that must succeed; returns its stdout.
    @discardableResult
    func mustKubectl(
        _ arguments: String...,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws
        -> String
    {
        try await self.mustKubectl(arguments, sourceLocation: sourceLocation)
    }

    @discardableResult
    func mustKubectl(
        _ arguments: [String],
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws
        -> String
    {
        let result = try await self.kubectl(arguments)
        try #require(
            result.status == 0,
            "kubectl \(arguments.joined(separator: " ")): \(result.output)",
            sourceLocation: sourceLocation
        )
        return result.stdout
    }

    /// Applies crds/ and waits until the API serves ProfilingTargets, then applies manifests/samples/.
    func installCRDsAndSamples() async throws {
        let crds = try await self.mustKubectl("apply", "-f", repositoryRoot.appendingPathComponent("crds").path)
        #expect(crds.contains("customresourcedefinition.apiextensions.k8s.io/profilingtargets.profiling.hearth.dev"))
        try await self.mustKubectl(
            "wait",
            "--for=condition=Established",
            "crd/profilingtargets.profiling.hearth.dev",
            "--timeout=30s"
        )
        let samples = try await self.mustKubectl(
            "apply",
            "-f",
            repositoryRoot.appendingPathComponent("manifests/samples").path
        )
        #expect(samples.contains("profilingtarget.profiling.hearth.dev/checkout created"), "\(samples)")
        #expect(samples.contains("profilingtarget.profiling.hearth.dev/frontend created"), "\(samples)")
    }

    /// Plays the DaemonSet controller and the agents: reports the agent's current generation ready on `nodes`
    /// nodes, and each node's agent renews its Lease with the configuration revision of the ConfigMap.
    func markAgentRolledOut(nodes: Int) async throws {
        let configuration = try await self.mustKubectl(self.agentConfigurationQuery)
        let revision = try #require(
            (try JSONSerialization.jsonObject(with: Data(configuration.utf8)) as? [String: Any])?["revision"] as? String
        )
        let now = ISO8601DateFormatter.string(
            from: Date(),
            timeZone: TimeZone(identifier: "UTC")!,
            formatOptions: [.withInternetDateTime, .withFractionalSeconds]
        )
        for node in 0..<nodes {
            let lease = """
                {"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"hearth-agent-node-\(node)",\
                "namespace":"hearth-system","labels":{"app.kubernetes.io/name":"hearth-agent",\
                "app.kubernetes.io/component":"node-lease"},"annotations":{"profiling.hearth.dev/config-revision":\
                "\(revision)"}},"spec":{"holderIdentity":"node-\(node)","leaseDurationSeconds":40,\
                "renewTime":"\(now)"}}
                """
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("lease-\(UUID().uuidString).json")
            try Data(lease.utf8).write(to: file)
            defer { try? FileManager.default.removeItem(at: file) }
            try await self.mustKubectl("apply", "--server-side", "--field-manager=hearth-agent", "-f", file.path)
        }
        let generation = try await self.mustKubectl(
            "get",
            "daemonset",
            "hearth-agent",
            "-n",
            "hearth-system",
            "-o",
            "jsonpath={.metadata.generation}"
        )
        let status =
            #"{"status":{"observedGeneration":\#(generation),"desiredNumberScheduled":\#(nodes),"currentNumberScheduled":\#(nodes),"updatedNumberScheduled":\#(nodes),"numberAvailable":\#(nodes),"numberReady":\#(nodes),"numberMisscheduled":0}}"#
        try await self.mustKubectl(
            "patch",
            "daemonset",
            "hearth-agent",
            "-n",
            "hearth-system",
            "--subresource=status",
            "--type=merge",
            "-p",
            status
        )
    }

    /// `kubectl apply --server-side` of one object written as JSON.
    func applyJSON(_ json: String) async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("object-\(UUID().uuidString).json")
        try Data(json.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        try await self.mustKubectl("apply", "--server-side", "-f", file.path)
    }

    func leaseHolder() async throws -> String {
        let result = try await self.kubectl(
            "get",
            "lease",
            "hearth-operator",
            "-n",
            "hearth-system",
            "-o",
            "jsonpath={.spec.holderIdentity}"
        )
        return result.status == 0 ? result.stdout : ""
    }

    /// Changes a target's spec (a new generation for the operator to observe).
    func setSampleRate(_ rate: Int, of name: String, namespace: String = "shop") async throws {
        try await self.mustKubectl(
            "patch",
            "pt",
            name,
            "-n",
            namespace,
            "--type=merge",
            "-p",
            #"{"spec":{"sampleRate":\#(rate)}}"#
        )
    }

    /// Runs `stop` (ending the leader) and returns how long until `identity` holds the Lease; nil after 30 s.
    func timeUntilLeader(_ identity: String, after stop: () -> Void) async throws -> Duration? {
        let stoppedAt = ContinuousClock.now
        stop()
        let tookOver = try await eventually(timeout: .seconds(30), every: .milliseconds(100)) {
            try await self.leaseHolder() == identity
        }
        return tookOver ? ContinuousClock.now - stoppedAt : nil
    }

    func observedGeneration(_ name: String, namespace: String = "shop") async throws -> String {
        try await self.kubectl("get", "pt", name, "-n", namespace, "-o", "jsonpath={.status.observedGeneration}")
            .stdout
    }
}

/// Splits a kubectl table line into its cells.
func cells(_ line: Substring) -> [String] {
    line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
}

@Suite("hearth-operator end to end with kubectl", .serialized, .timeLimit(.minutes(4)))
struct EndToEndTests {
    @Test("kubectl applies crds/ and the samples; the operator rolls out, reports, serves metrics, cleans up")
    func samples() async throws {
        try await KubeTestServerProcess.with { cluster in
            try await cluster.installCRDsAndSamples()
            let replica = try await OperatorProcess.start(cluster, identity: "replica-a")
            defer { replica.process.stop() }

            // The agent objects appear, with both samples in its configuration.
            #expect(
                await eventually {
                    (try? await cluster.kubectl("get", "daemonset", "hearth-agent", "-n", "hearth-system").status) == 0
                },
                "no agent DaemonSet: \(replica.process.output)"
            )
            let config = try await cluster.mustKubectl(cluster.agentConfigurationQuery)
            #expect(config.contains(#""name":"checkout""#) && config.contains(#""name":"frontend""#), "\(config)")
            let secretKeys = try await cluster.mustKubectl(
                "get",
                "secret",
                "hearth-agent-credentials",
                "-n",
                "hearth-system",
                "-o",
                "jsonpath={.data}"
            )
            #expect(!secretKeys.isEmpty && secretKeys != "{}", "the basic-auth password is copied for the agent")

            // The DaemonSet controller's part, then the condition a user waits for.
            try await cluster.markAgentRolledOut(nodes: 2)
            let rolledOut = try await cluster.kubectl(
                "wait",
                "--for=condition=AgentRolledOut",
                "pt",
                "--all",
                "-n",
                "shop",
                "--timeout=60s"
            )
            #expect(rolledOut.status == 0, "\(rolledOut.output)")
            #expect(rolledOut.stdout.contains("profilingtarget.profiling.hearth.dev/checkout condition met"))
            #expect(rolledOut.stdout.contains("profilingtarget.profiling.hearth.dev/frontend condition met"))
            // No Pyroscope answers here: the status says so instead of claiming Ready.
            let unreachable = try await cluster.kubectl(
                "wait",
                "--for=condition=PyroscopeReachable=False",
                "pt/checkout",
                "-n",
                "shop",
                "--timeout=60s"
            )
            #expect(unreachable.status == 0, "\(unreachable.output)")

            // kubectl get pt: the printer columns, and the wide column with the resolved URL.
            let table = try await cluster.mustKubectl("get", "pt", "-n", "shop")
            let lines = table.split(separator: "\n")
            #expect(
                lines.first.map(cells) == ["NAME", "READY", "REASON", "PODS", "NODES", "DEGRADED", "AGE"],
                "\(table)"
            )
            let checkout = try #require(lines.first { $0.hasPrefix("checkout ") }, "\(table)")
            #expect(Array(cells(checkout).prefix(6)) == ["checkout", "False", "Unreachable", "0", "2", "0"])
            let wide = try await cluster.mustKubectl("get", "pt", "checkout", "-n", "shop", "-o", "wide")
            #expect(wide.split(separator: "\n").first.map(cells)?.contains("PYROSCOPE") == true, "\(wide)")
            #expect(wide.contains("http://pyroscope.observability.svc:4040"), "\(wide)")

            // A checkout pod on node-1, whose agent reports itself degraded: DEGRADED counts the node.
            try await cluster.applyJSON(
                #"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"checkout-1","namespace":"shop","labels":{"app":"checkout"}},"spec":{"nodeName":"node-1","containers":[{"name":"app","image":"shop/checkout:1"}]}}"#
            )
            try await cluster.markAgentRolledOut(nodes: 2)  // fresh Leases, however long the steps above took
            try await cluster.mustKubectl(
                "annotate",
                "lease",
                "hearth-agent-node-1",
                "-n",
                "hearth-system",
                "profiling.hearth.dev/degraded=3 nested cgroups not held by the filter map"
            )
            let degraded = try await cluster.kubectl(
                "wait",
                "--for=condition=AgentDegraded",
                "pt/checkout",
                "-n",
                "shop",
                "--timeout=60s"
            )
            #expect(degraded.status == 0, "\(degraded.output)")
            let degradedTable = try await cluster.mustKubectl("get", "pt", "checkout", "-n", "shop")
            let degradedRow = try #require(degradedTable.split(separator: "\n").last, "\(degradedTable)")
            #expect(Array(cells(degradedRow).prefix(6)) == ["checkout", "False", "Unreachable", "1", "2", "1"])
            let listed = try await cluster.mustKubectl(
                "get",
                "pt",
                "checkout",
                "-n",
                "shop",
                "-o",
                "jsonpath={.status.agent.degraded[*].node}"
            )
            #expect(listed == "node-1")

            // Metrics and health endpoints.
            let (metricsStatus, metrics) = try await replica.get(replica.metricsURL + "/metrics")
            #expect(metricsStatus == 200)
            #expect(metrics.contains("# TYPE controller_runtime_reconcile_total counter"))
            #expect(try await replica.reconciles() > 0, "\(metrics)")
            #expect(metrics.contains(#"workqueue_depth{controller="profilingtarget",name="profilingtarget"} "#))
            #expect(try await replica.metric(#"leader_election_master_status{name="hearth-operator"}"#) == 1)
            #expect(try await replica.get(replica.healthURL + "/healthz") == (200, "ok\n"))
            #expect(try await replica.get(replica.healthURL + "/readyz") == (200, "ok\n"))
            #expect(try await replica.get(replica.healthURL + "/nope").0 == 404)
            #expect(try await replica.get(replica.metricsURL + "/").0 == 404)

            // Deleting a target completes (the finalizer is released) and leaves the agent configuration.
            let deleted = try await cluster.kubectl("delete", "pt", "checkout", "-n", "shop", "--timeout=60s")
            #expect(deleted.status == 0, "\(deleted.output)")
            #expect(deleted.stdout.contains(#"profilingtarget.profiling.hearth.dev "checkout" deleted"#))
            #expect(
                await eventually {
                    let config = try? await cluster.kubectl(cluster.agentConfigurationQuery)
                    return config?.stdout.contains(#""name":"checkout""#) == false
                }
            )
            // The last target gone: the agent objects go too.
            let all = try await cluster.kubectl("delete", "pt", "--all", "-n", "shop", "--timeout=60s")
            #expect(all.status == 0, "\(all.output)")
            #expect(
                await eventually {
                    let left = try? await cluster.kubectl(
                        "get",
                        "daemonset,configmap,secret,serviceaccount",
                        "-n",
                        "hearth-system",
                        "-l",
                        "app.kubernetes.io/managed-by=hearth-operator",
                        "-o",
                        "name"
                    )
                    return left?.status == 0 && left?.stdout.isEmpty == true
                },
                "agent objects left behind"
            )

            // SIGTERM: a graceful stop that releases the lease.
            replica.process.terminate()
            #expect(await replica.process.waitForExit(timeout: .seconds(15)) == 0, "\(replica.process.output)")
            #expect(try await cluster.leaseHolder() == "")
        }
    }

    @Test("two replicas: one leads and reconciles; the other takes over within 20 s when the leader stops")
    func failOver() async throws {
        try await KubeTestServerProcess.with { cluster in
            try await cluster.installCRDsAndSamples()
            let first = try await OperatorProcess.start(cluster, identity: "replica-a")
            defer { first.process.stop() }
            #expect(try await eventually { try await cluster.leaseHolder() == "replica-a" })
            #expect(try await eventually { try await cluster.observedGeneration("checkout") == "1" })

            let second = try await OperatorProcess.start(cluster, identity: "replica-b")
            defer { second.process.stop() }
            // The follower is ready (it only waits) and does no work while the leader reconciles a change.
            #expect(try await second.get(second.healthURL + "/readyz").0 == 200)
            try await cluster.setSampleRate(49, of: "checkout")
            #expect(try await eventually { try await cluster.observedGeneration("checkout") == "2" })
            #expect(try await cluster.leaseHolder() == "replica-a")
            #expect(try await second.reconciles() == 0)
            #expect(try await second.metric(#"leader_election_master_status{name="hearth-operator"}"#) == 0)

            // The leader crashes (SIGKILL: no release). The follower takes over once the lease expires.
            let takeover = try await cluster.timeUntilLeader("replica-b") { first.process.stop() }
            #expect(
                takeover != nil && takeover! <= .seconds(20),
                "takeover after a crash took \(String(describing: takeover))"
            )
            try await cluster.setSampleRate(29, of: "checkout")
            #expect(try await eventually { try await cluster.observedGeneration("checkout") == "3" })
            #expect(try await second.reconciles() > 0)

            // A graceful stop releases the lease: a new replica takes over without waiting for expiry.
            let third = try await OperatorProcess.start(cluster, identity: "replica-c")
            defer { third.process.stop() }
            #expect(try await third.get(third.healthURL + "/readyz").0 == 200)
            let handover = try await cluster.timeUntilLeader("replica-c") { second.process.terminate() }
            // Well under the 15 s lease: it was released, not left to expire.
            #expect(
                handover != nil && handover! <= .seconds(8),
                "takeover after a graceful stop took \(String(describing: handover))"
            )
            #expect(await second.process.waitForExit(timeout: .seconds(15)) == 0, "\(second.process.output)")

            // With the API server gone, a stop still ends promptly: the lease release gives up after two retry
            // periods instead of waiting out the client's 30 s timeout.
            cluster.server.stop()
            third.process.terminate()
            let exit = await third.process.waitForExit(timeout: .seconds(12))
            #expect(exit == 0, "\(third.process.output.suffix(2000))")
        }
    }
}

@Suite("hearth-operator with Grafana, end to end with kubectl", .timeLimit(.minutes(3)))
struct GrafanaEndToEndTests {
    @Test("--grafana-url and the sample credentials Secret: kubectl wait --for=condition=DatasourceSynced succeeds")
    func kubectlWait() async throws {
        try await withGrafanaServer(authentication: [.token("glsa_replace-with-your-service-account-token")]) {
            grafana in
            try await KubeTestServerProcess.with { cluster in
                try await cluster.installCRDsAndSamples()
                let replica = try await OperatorProcess.start(
                    cluster,
                    identity: "replica-grafana",
                    extraArguments: [
                        "--grafana-url", grafana.url, "--grafana-credentials", "hearth-system/grafana-service-account",
                    ]
                )
                defer { replica.process.stop() }
                let waited = try await cluster.kubectl(
                    "wait",
                    "--for=condition=DatasourceSynced",
                    "pt/checkout",
                    "-n",
                    "shop",
                    "--timeout=60s"
                )
                #expect(waited.status == 0, "\(waited.output)\n\(replica.process.output)")
                let uid = try await cluster.mustKubectl(
                    "get",
                    "pt",
                    "checkout",
                    "-n",
                    "shop",
                    "-o",
                    "jsonpath={.status.grafana.uid}"
                )
                #expect(uid == "pyroscope-shop")
                let wide = try await cluster.mustKubectl("get", "pt", "checkout", "-n", "shop", "-o", "wide")
                #expect(wide.contains("DATASOURCE") && wide.contains("Pyroscope (shop)"), "\(wide)")
                let datasource = try #require(grafana.datasources["pyroscope-shop"])
                #expect(
                    datasource.name == "Pyroscope (shop)"
                        && datasource.secureJsonData["basicAuthPassword"] == "change-me"
                )
                // The sample without spec.grafana is left alone.
                let frontend = try await cluster.mustKubectl(
                    "get",
                    "pt",
                    "frontend",
                    "-n",
                    "shop",
                    "-o",
                    #"jsonpath={.status.conditions[?(@.type=="DatasourceSynced")].reason}"#
                )
                #expect(frontend == "NotRequested")
                let gets = try await replica.metric(#"hearth_grafana_requests_total{code="404",method="GET"}"#)
                #expect(gets == 1)
                #expect(try await replica.metric("hearth_grafana_drift_corrections_total") == 0)

                // Deleting the target removes the datasource before the finalizer goes.
                try await cluster.mustKubectl("delete", "pt", "checkout", "-n", "shop", "--timeout=60s")
                #expect(grafana.datasources["pyroscope-shop"] == nil)
            }
        }
    }
}
