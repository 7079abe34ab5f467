// IdleOperatorTests.swift: an operator with nothing changing does nothing (issue 18, item 6). Time-based work is
// done once per backend and period (``BackendProbes``) or once per Lease renewal interval (``FreshLeases``), and
// reconciles only the targets whose status it changes; no target is requeued on a timer of its own.

import Foundation
import HearthAPI
import HearthTestSupport
import KubeClient
import KubeModel
import KubeRuntime
import KubeTestServer
import Synchronization
import Testing

@testable import HearthOperator

/// A prober whose answer per URL a test sets, counting probes.
final class CountingProber: PyroscopeProber {
    let down = Mutex<Set<String>>([])
    let probes = Mutex<[String]>([])
    func probe(url: String, tenantID: String?) async -> ProbeResult {
        self.probes.withLock { $0.append(url) }
        let ok = !self.down.withLock { $0.contains(url) }
        return ProbeResult(reachable: ok, message: "GET \(url)/ready answered \(ok ? 200 : 503)")
    }
    var count: Int { self.probes.withLock { $0.count } }
}

@Suite("Backend probes and fresh Leases")
struct BackendProbeTests {
    static func key(_ index: Int) -> ObjectKey { ObjectKey(namespace: "team-\(index % 100)", name: "app-\(index)") }

    @Test("1,000 targets on 10 backends cost 10 probes; the cached result serves them until the TTL")
    func oneProbePerBackend() async {
        let prober = CountingProber()
        let probes = BackendProbes(
            prober,
            ttl: .seconds(3600),
            readyPeriod: .seconds(300),
            notReadyPeriod: .seconds(30)
        )
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<1000 {
                group.addTask {
                    _ = await probes.probe(
                        url: "http://pyroscope-\(index % 10):4040",
                        tenantID: nil,
                        for: Self.key(index)
                    )
                }
            }
        }
        #expect(prober.count == 10)
        #expect(Set(prober.probes.withLock { $0 }).count == 10)
        // Nothing is due yet: a refresh probes nothing.
        #expect(await probes.refresh().isEmpty)
        #expect(prober.count == 10)
    }

    @Test("a refresh probes each backend once its period passed and names only the users of those that changed")
    func refreshNamesUsersOfChangedBackends() async {
        let prober = CountingProber()
        let probes = BackendProbes(
            prober,
            ttl: .seconds(3600),
            readyPeriod: .seconds(300),
            notReadyPeriod: .seconds(30)
        )
        let start = ContinuousClock.now
        for index in 0..<20 {
            _ = await probes.probe(url: "http://pyroscope-\(index % 2):4040", tenantID: nil, for: Self.key(index))
        }
        #expect(prober.count == 2)
        prober.down.withLock { _ = $0.insert("http://pyroscope-1:4040") }
        // Before the ready period: nothing.
        #expect(await probes.refresh(now: start + .seconds(299)).isEmpty)
        #expect(prober.count == 2)
        // After it: both probed, the users of the backend that went down named.
        let changed = await probes.refresh(now: start + .seconds(301))
        #expect(prober.count == 4)
        #expect(changed == (0..<20).filter { $0 % 2 == 1 }.map(Self.key).sorted())
        // Unreachable backends are probed again at the shorter period; unchanged, nobody is named.
        let later = ContinuousClock.now
        #expect(await probes.refresh(now: later + .seconds(31)).isEmpty)
        #expect(prober.count == 5)
    }

    @Test("a reconcile that finds a changed result names the backend's other users; forgotten targets are not")
    func reconcileProbeNamesOthers() async {
        let prober = CountingProber()
        let probes = BackendProbes(prober, ttl: .zero, readyPeriod: .seconds(300), notReadyPeriod: .seconds(30))
        let url = "http://pyroscope:4040"
        for index in 0..<3 { _ = await probes.probe(url: url, tenantID: nil, for: Self.key(index)) }
        probes.forget(Self.key(2))
        prober.down.withLock { _ = $0.insert(url) }
        let (result, others) = await probes.probe(url: url, tenantID: nil, for: Self.key(0))
        #expect(!result.reachable)
        #expect(others == [Self.key(1)])
        // A target moving to another backend leaves the first one's users.
        _ = await probes.probe(url: "http://elsewhere:4040", tenantID: nil, for: Self.key(1))
        prober.down.withLock { $0.removeAll() }
        #expect(await probes.probe(url: url, tenantID: nil, for: Self.key(0)).othersChanged.isEmpty)
        // The tenant is part of the backend.
        _ = await probes.probe(url: url, tenantID: "team-a", for: Self.key(3))
        #expect(prober.count == 7)
    }

    @Test("a known Lease going stale or fresh again is a change; one appearing or going is not (its watch event is)")
    func freshLeases() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let fresh = FreshLeases()
        let node0 = makeAgentLease(node: "node-0", degradation: nil, renewed: now)
        let node1 = makeAgentLease(node: "node-1", degradation: nil, renewed: now)
        #expect(!fresh.changed([node0, node1], now: now), "the first check only records")
        #expect(!fresh.changed([node0, node1], now: now.addingTimeInterval(10)))
        // node-1 stops renewing: stale after the Lease duration, with no event.
        let renewed0 = makeAgentLease(node: "node-0", degradation: nil, renewed: now.addingTimeInterval(60))
        #expect(fresh.changed([renewed0, node1], now: now.addingTimeInterval(61)))
        #expect(!fresh.changed([renewed0, node1], now: now.addingTimeInterval(62)))
        let renewed1 = makeAgentLease(node: "node-1", degradation: nil, renewed: now.addingTimeInterval(70))
        #expect(fresh.changed([renewed0, renewed1], now: now.addingTimeInterval(71)))
        let node2 = makeAgentLease(node: "node-2", degradation: nil, renewed: now.addingTimeInterval(72))
        #expect(!fresh.changed([renewed0, renewed1, node2], now: now.addingTimeInterval(73)))
        #expect(!fresh.changed([renewed0, node2], now: now.addingTimeInterval(74)))
    }
}

@Suite("An idle operator", .timeLimit(.minutes(3)))
struct IdleOperatorTests {
    @Test(
        "every target Ready and nothing changing: no key is queued or waits on a timer, and each backend was probed once"
    )
    func nothingQueuedWhenIdle() async throws {
        let configure: (inout OperatorConfiguration) -> Void = { $0.probeCacheTTL = .seconds(3600) }
        try await OperatorHarness.with(configure: configure) { h in
            for index in 0..<6 {
                _ = try await h.targets.inNamespace("shop").create(
                    makeTarget(
                        "app-\(index)",
                        app: "app-\(index)",
                        url: "http://pyroscope-\(index % 2).observability.svc:4040"
                    )
                )
            }
            #expect(try await eventually { try await h.configuredTargets().count == 6 })
            try await h.markAgentRolledOut(nodes: 2)
            for index in 0..<6 {
                try await h.waitFor("shop", "app-\(index)", ConditionType.ready, status: "True")
            }
            await h.waitUntilIdle()
            #expect(h.queue.depth == 0 && h.queue.processingCount == 0)
            #expect(h.queue.delayedCount == 0, "a target was requeued on a timer")
            #expect(Set(h.prober.probes.withLock { $0 }).count == 2)
            #expect(h.prober.probes.withLock { $0 }.count == 2, "one probe per backend, not per target")
        }
    }

    @Test("a backend that stops answering is found by the periodic probe: its targets say so with no requeue of theirs")
    func backendChangeReconcilesItsTargets() async throws {
        let configure: (inout OperatorConfiguration) -> Void = { configuration in
            configuration.probeCacheTTL = .seconds(3600)
            configuration.readyRequeue = .milliseconds(300)
            configuration.notReadyRequeue = .milliseconds(300)
        }
        try await OperatorHarness.with(configure: configure) { h in
            _ = try await h.targets.inNamespace("shop").create(makeTarget("checkout"))
            _ = try await h.targets.inNamespace("shop").create(makeTarget("cart", app: "cart"))
            for name in ["checkout", "cart"] {
                try await h.waitFor("shop", name, ConditionType.pyroscopeReachable, status: "True")
            }
            await h.waitUntilIdle()
            #expect(h.queue.delayedCount == 0)
            h.prober.reachable.withLock { $0 = false }
            // No key is added by the test: the periodic probe finds the change and reconciles the backend's users.
            for name in ["checkout", "cart"] {
                try await h.waitFor(
                    "shop",
                    name,
                    ConditionType.pyroscopeReachable,
                    status: "False",
                    reason: ConditionReason.unreachable
                )
            }
            h.prober.reachable.withLock { $0 = true }
            for name in ["checkout", "cart"] {
                try await h.waitFor("shop", name, ConditionType.pyroscopeReachable, status: "True")
            }
        }
    }

    @Test("the agents' lease Role and RoleBinding are watched: deleted, they are applied again")
    func leaseRBACWatched() async throws {
        try await OperatorHarness.with { h in
            _ = try await h.targets.inNamespace("shop").create(makeTarget("checkout"))
            let namespace = h.configuration.namespace
            let roles = h.client.resource(Role.self, namespace: namespace)
            let bindings = h.client.resource(RoleBinding.self, namespace: namespace)
            #expect(try await eventually { try await roles.getIfExists("hearth-agent") != nil })
            #expect(try await eventually { try await bindings.getIfExists("hearth-agent") != nil })
            await h.waitUntilIdle()
            try await roles.delete("hearth-agent")
            #expect(try await eventually { try await roles.getIfExists("hearth-agent") != nil })
            try await bindings.delete("hearth-agent")
            #expect(try await eventually { try await bindings.getIfExists("hearth-agent") != nil })
            // Cached now: reconciling the agent again reads them from the cache and writes nothing.
            await h.waitUntilIdle()
            h.server.clearRequestLog()
            await h.reconcileAndSettle([AgentKey])
            #expect(h.operatorWrites.isEmpty, "\(h.operatorWrites.map { "\($0.method) \($0.path)" })")
        }
    }
}

@Suite("Pods of a target")
struct PodLookupTests {
    @Test("the label index finds the same pods as filtering the namespace, for any selector")
    func labelIndexMatchesFilter() {
        let stores = OperatorStores()
        stores.pods.apply(.initStarted)
        for index in 0..<60 {
            var pod = makePod(
                "pod-\(index)",
                namespace: index % 2 == 0 ? "shop" : "other",
                app: "app-\(index % 5)",
                node: "node-\(index % 3)"
            )
            pod.metadata.labels?["tier"] = index % 3 == 0 ? "web" : "batch"
            stores.pods.apply(.initApply(OperatorStores.podIdentityAndLabels(pod)))
        }
        stores.pods.apply(.initDone)
        let selectors = [
            LabelSelector(matchLabels: ["app": "app-1"]),
            LabelSelector(matchLabels: ["app": "app-2", "tier": "web"]),
            LabelSelector(matchLabels: ["app": "none"]),
            LabelSelector(),
            LabelSelector(
                matchLabels: ["tier": "batch"],
                matchExpressions: [LabelSelectorRequirement(key: "app", operator: "In", values: ["app-3", "app-4"])]
            ),
        ]
        for namespace in ["shop", "other", "empty"] {
            for selector in selectors {
                let expected = stores.pods.byIndex("namespace", namespace).filter {
                    selector.matches($0.metadata.labels)
                }
                let found = stores.pods(in: namespace, selectedBy: selector)
                #expect(found.compactMap(\.metadata.name).sorted() == expected.compactMap(\.metadata.name).sorted())
            }
        }
        // app-1 is pods 1, 6, 11 … 56: six in each namespace.
        #expect(stores.pods(in: "shop", selectedBy: LabelSelector(matchLabels: ["app": "app-1"])).count == 6)
        #expect(stores.pods(in: "other", selectedBy: LabelSelector(matchLabels: ["app": "app-1"])).count == 6)
    }
}
