// OperatorTestSupport.swift: an in-process kube-test-server, the CRD, a running operator controller, and helpers
// to poll with deadlines (never sleep-and-hope).

import Foundation
import HearthAPI
import HearthOperator
import HearthTestSupport
import KubeClient
import KubeModel
import KubeRuntime
import KubeTestServer
import Logging
import NIOPosix
import Synchronization
import Testing

/// A Pyroscope prober whose answer a test can change.
final class StubProber: PyroscopeProber {
    let reachable = Mutex(true)
    let probes = Mutex<[String]>([])
    func probe(url: String, tenantID: String?) async -> ProbeResult {
        self.probes.withLock { $0.append(url) }
        let ok = self.reachable.withLock { $0 }
        return ProbeResult(reachable: ok, message: "GET \(url)/ready answered \(ok ? 200 : 503)")
    }
}

/// A server with the CRD installed, a test client, and a running operator.
struct OperatorHarness {
    let server: KubeTestServer
    /// The test's own client (user agent `tests/1.0`).
    let client: KubeClient
    let reconciler: OperatorReconciler
    let queue: WorkQueue<ObjectKey>
    let configuration: OperatorConfiguration
    let prober: StubProber

    static let operatorUserAgent = "hearth-operator/test"

    static func with<Result: Sendable>(
        configure: (inout OperatorConfiguration) -> Void = { _ in },
        _ body: (OperatorHarness) async throws -> Result
    ) async throws -> Result {
        try await KubeTestServer.withRunning(logger: testLogger("hearth-operator-tests")) { server in
            try await withKubeClient(
                configuration: testClientConfiguration(server.url, userAgent: "tests/1.0", timeout: .seconds(15)),
                logger: testLogger("hearth-operator-tests")
            ) { client in
                _ = try await client.resource(CustomResourceDefinition.self).create(
                    ProfilingTarget.customResourceDefinition
                )
                for name in ["hearth-system", "shop", "observability", "other"] {
                    _ = try await client.resource(Namespace.self).create(Namespace(name: name))
                }
                var configuration = OperatorConfiguration()
                configuration.probeCacheTTL = .zero
                configure(&configuration)
                let prober = StubProber()
                return try await withKubeClient(
                    configuration: testClientConfiguration(
                        server.url,
                        userAgent: Self.operatorUserAgent,
                        timeout: .seconds(15)
                    ),
                    logger: testLogger("hearth-operator-tests")
                ) { operatorClient in
                    let recorder = EventRecorder(
                        client: operatorClient,
                        controller: "profiling.hearth.dev/hearth-operator",
                        instance: "test",
                        logger: testLogger("hearth-operator-tests")
                    )
                    let (controller, reconciler) = ProfilingTargetController.make(
                        client: operatorClient,
                        configuration: configuration,
                        prober: prober,
                        recorder: recorder,
                        logger: testLogger("hearth-operator-tests")
                    )
                    let harness = OperatorHarness(
                        server: server,
                        client: client,
                        reconciler: reconciler,
                        queue: controller.queue,
                        configuration: configuration,
                        prober: prober
                    )
                    return try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask { try await controller.run() }
                        defer { group.cancelAll() }
                        return try await body(harness)
                    }
                }
            }
        }
    }

    var targets: ResourceClient<ProfilingTarget> { self.client.resource(ProfilingTarget.self) }

    func target(_ namespace: String, _ name: String) async throws -> ProfilingTarget? {
        try await self.targets.inNamespace(namespace).getIfExists(name)
    }

    func daemonSet() async throws -> DaemonSet? {
        try await self.client.resource(DaemonSet.self, namespace: self.configuration.namespace).getIfExists(
            self.configuration.agentName
        )
    }

    func configMap() async throws -> ConfigMap? {
        try await self.client.resource(ConfigMap.self, namespace: self.configuration.namespace).getIfExists(
            self.configuration.configMapName
        )
    }

    func agentSecret() async throws -> Secret? {
        try await self.client.resource(Secret.self, namespace: self.configuration.namespace).getIfExists(
            self.configuration.secretName
        )
    }

    /// The targets in the agent ConfigMap, as `namespace/name`.
    func configuredTargets() async throws -> [String] {
        try await self.agentConfiguration()?.targets.map(\.key) ?? []
    }

    /// The agent configuration in the ConfigMap, decoded as the agent decodes it.
    func agentConfiguration() async throws -> AgentConfiguration? {
        guard let data = try await self.configMap()?.data?[AgentRenderer.configKey] else { return nil }
        return try AgentConfiguration.decode(Data(data.utf8))
    }

    /// Plays the agents: each of `nodes` nodes renews its Lease with the configuration revision `revision`
    /// (default: the ConfigMap's).
    func reportAgentRevision(nodes: Int = 3, revision: String? = nil) async throws {
        let reported: String
        if let revision {
            reported = revision
        } else {
            reported = try #require(try await self.agentConfiguration()).revision
        }
        let leases = self.client.resource(Lease.self, namespace: self.configuration.namespace)
        for node in 0..<nodes {
            let name = AgentLease.name(node: "node-\(node)")
            var lease = Lease(name: name, namespace: self.configuration.namespace)
            lease.metadata.labels = AgentLease.labels
            lease.metadata.annotations = [AgentLease.revisionAnnotation: reported]
            lease.spec.holderIdentity = "node-\(node)"
            lease.spec.leaseDurationSeconds = AgentLease.durationSeconds
            lease.spec.renewTime = KubeTime.formatMicro(Date())
            _ = try await leases.apply(lease, fieldManager: "hearth-agent", force: true)
        }
    }

    /// Plays the agent of node `node-N`: renews its Lease (as of `renewed`) with the ConfigMap's revision and
    /// `degradation`; nil removes the annotation, as the agent does once it is no longer degraded.
    func renewAgentLease(node: Int, degradation: String?, renewed: Date = Date()) async throws {
        let revision = try #require(try await self.agentConfiguration()).revision
        var lease = makeAgentLease(node: "node-\(node)", revision: revision, degradation: degradation, renewed: renewed)
        lease.metadata.namespace = self.configuration.namespace
        _ = try await self.client.resource(Lease.self, namespace: self.configuration.namespace).apply(
            lease,
            fieldManager: "hearth-agent",
            force: true
        )
    }

    func condition(_ namespace: String, _ name: String, _ type: String) async throws -> Condition? {
        try await self.target(namespace, name)?.status.condition(type)
    }

    /// Waits until a condition has the status (and reason, when given).
    func waitFor(
        _ namespace: String,
        _ name: String,
        _ type: String,
        status: String,
        reason: String? = nil,
        timeout: Duration = .seconds(30)
    ) async throws {
        let held = try await eventually(timeout: timeout) {
            let condition = try await self.condition(namespace, name, type)
            return condition?.status == status && (reason == nil || condition?.reason == reason)
        }
        let last = try await self.condition(namespace, name, type)
        #expect(
            held,
            "\(namespace)/\(name) \(type): want \(status)/\(reason ?? "*"), have \(last?.status ?? "-")/\(last?.reason ?? "-"): \(last?.message ?? "")"
        )
    }

    /// Plays the DaemonSet controller and the agents: marks the agent DaemonSet's current generation rolled out
    /// on `nodes` nodes, whose agents report the current configuration revision.
    func markAgentRolledOut(nodes: Int = 3) async throws {
        try await self.reportAgentRevision(nodes: nodes)
        let daemonSets = self.client.resource(DaemonSet.self, namespace: self.configuration.namespace)
        let current = try #require(try await self.daemonSet())
        let status: JSONValue = [
            "observedGeneration": .int(current.metadata.generation ?? 1),
            "desiredNumberScheduled": .int(Int64(nodes)), "currentNumberScheduled": .int(Int64(nodes)),
            "updatedNumberScheduled": .int(Int64(nodes)), "numberAvailable": .int(Int64(nodes)),
            "numberReady": .int(Int64(nodes)), "numberMisscheduled": 0,
        ]
        _ = try await daemonSets.patchStatus(
            self.configuration.agentName,
            .merge(["status": status]),
            fieldManager: "daemonset-controller"
        )
    }

    /// Writes by the operator in the request log.
    var operatorWrites: [KubeTestServer.RequestRecord] {
        self.server.requestLog.filter { $0.isWrite && $0.userAgent.hasPrefix(Self.operatorUserAgent) }
    }

    /// Waits until the queue is empty and no reconcile runs, twice in a row 100 ms apart.
    func waitUntilIdle(timeout: Duration = .seconds(30)) async {
        var quietSince: ContinuousClock.Instant?
        _ = await eventually(timeout: timeout, every: .milliseconds(20)) {
            let idle = self.queue.depth == 0 && self.queue.processingCount == 0
            if !idle {
                quietSince = nil
                return false
            }
            if quietSince == nil { quietSince = .now }
            return ContinuousClock.now - quietSince! >= .milliseconds(300)
        }
    }

    /// Enqueues keys and waits until at least that many more reconciles finished and the queue is idle.
    func reconcileAndSettle(_ keys: [ObjectKey]) async {
        let before = self.reconciler.reconciles
        for key in keys { self.queue.add(key) }
        _ = await eventually { self.reconciler.reconciles >= before + keys.count }
        await self.waitUntilIdle()
    }
}

/// A ProfilingTarget for tests.
func makeTarget(
    _ name: String,
    namespace: String = "shop",
    app: String = "checkout",
    sampleRate: Int = 99,
    url: String? = "http://pyroscope.observability.svc:4040",
    serviceRef: ServiceReference? = nil,
    passwordSecret: String? = nil
) -> ProfilingTarget {
    var target = ProfilingTarget(name: name, namespace: namespace)
    var spec = ProfilingTargetSpec()
    spec.selector = LabelSelector(matchLabels: ["app": app])
    spec.sampleRate = sampleRate
    var backend = PyroscopeBackend()
    if let serviceRef { backend.serviceRef = serviceRef } else { backend.url = url }
    if let passwordSecret {
        var basic = BasicAuth()
        basic.username = "shop"
        basic.passwordSecretRef = SecretKeyReference(name: passwordSecret, key: "password")
        backend.basicAuth = basic
    }
    spec.pyroscope = backend
    target.spec = spec
    return target
}

func makeSecret(_ name: String, namespace: String = "shop", password: String = "s3cr3t-value") -> Secret {
    var secret = Secret(name: name, namespace: namespace)
    secret.data = ["password": Data(password.utf8).base64EncodedString()]
    return secret
}

func makeService(_ name: String, namespace: String = "observability", port: Int = 4040) -> Service {
    var service = Service(name: name, namespace: namespace)
    var servicePort = ServicePort()
    servicePort.name = "http"
    servicePort.port = port
    var spec = ServiceSpec()
    spec.ports = [servicePort]
    spec.selector = ["app.kubernetes.io/name": "pyroscope"]
    service.spec = spec
    return service
}
