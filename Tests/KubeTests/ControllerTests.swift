// ControllerTests.swift: a controller over Gizmos that owns ConfigMaps, run in a ServiceGroup.

import Foundation
import HearthTestSupport
import KubeClient
import KubeModel
import KubeRuntime
import KubeTestServer
import Logging
import Metrics
import MetricsTestKit
import ServiceLifecycle
import Testing

/// A Service from a closure.
struct ServiceFunction: ServiceLifecycle.Service {
    let body: @Sendable () async throws -> Void
    init(_ body: @escaping @Sendable () async throws -> Void) { self.body = body }
    func run() async throws { try await self.body() }
}

/// Keeps one ConfigMap per Gizmo (server-side apply, owned) and a Ready condition.
struct GizmoReconciler: Reconciler {
    let client: KubeClient
    let store: Store<DynamicObject>
    let calls: Locked<Int>

    func reconcile(_ key: ObjectKey) async throws -> ReconcileResult {
        self.calls.withLock { $0 += 1 }
        guard let gizmo = self.store.get(key), gizmo.metadata.deletionTimestamp == nil else { return .done }
        var configMap = ConfigMap(name: "gizmo-\(key.name)", namespace: key.namespace)
        configMap.data = ["size": "\(gizmo.spec?["size"]?.intValue ?? 0)"]
        configMap.metadata.ownerReferences = [
            OwnerReference(
                apiVersion: "example.com/v1",
                kind: "Gizmo",
                name: key.name,
                uid: gizmo.metadata.uid ?? "",
                controller: true,
                blockOwnerDeletion: true
            )
        ]
        _ = try await self.client.resource(ConfigMap.self, namespace: key.namespace)
            .apply(configMap, fieldManager: "gizmo-controller", force: true)
        var status = DynamicObject(Gizmo.type, name: key.name, namespace: key.namespace)
        let condition = Condition(
            type: "Ready",
            status: "True",
            reason: "ConfigMapApplied",
            message: "",
            observedGeneration: gizmo.metadata.generation
        )
        status.status = ["observedGeneration": .int(gizmo.metadata.generation ?? 0), "conditions": [condition.json]]
        _ = try await self.client.resource(Gizmo.type, namespace: key.namespace)
            .applyStatus(status, fieldManager: "gizmo-controller", force: true)
        return .done
    }
}

@Suite("Controller", .timeLimit(.minutes(1)))
struct ControllerTests {
    @Test("reconciles the primary kind, re-reconciles when an owned object changes, counts metrics, shuts down")
    func ownedObjects() async throws {
        try await withServerAndClient { server, client in
            try await Gizmo.install(client)
            let metrics = TestMetrics()
            let store = Store<DynamicObject>()
            let calls = Locked(0)
            let gizmos = client.resource(Gizmo.type, namespace: nil)
            var configuration = Controller<DynamicObject>.Configuration()
            configuration.maxConcurrentReconciles = 2
            let controller = Controller(
                name: "gizmo",
                watching: gizmos,
                store: store,
                configuration: configuration,
                logger: testLogger(),
                metricsFactory: metrics,
                reconciler: GizmoReconciler(client: client, store: store, calls: calls)
            ).owns(client.resource(ConfigMap.self, namespace: nil))
            let group = ServiceGroup(configuration: .init(services: [controller], logger: testLogger()))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                let namespaced = client.resource(Gizmo.type, namespace: "default")
                let configMaps = client.resource(ConfigMap.self, namespace: "default")
                _ = try await namespaced.create(Gizmo.object("g1", size: 2))
                #expect(
                    try await eventually {
                        try await configMaps.getIfExists("gizmo-g1")?.data?["size"] == "2"
                    }
                )
                #expect(
                    try await eventually {
                        let object = try await namespaced.get("g1")
                        return object.status?["conditions"]?.arrayValue?.first?["status"] == "True"
                    }
                )
                _ = try await namespaced.patch("g1", .merge(["spec": ["size": 5]]))
                #expect(try await eventually { try await configMaps.getIfExists("gizmo-g1")?.data?["size"] == "5" })
                // Someone deletes the owned ConfigMap: the owner is reconciled and it comes back.
                try await configMaps.delete("gizmo-g1")
                #expect(try await eventually { try await configMaps.getIfExists("gizmo-g1") != nil })
                // Deleting the owner garbage-collects the ConfigMap.
                try await namespaced.delete("g1")
                #expect(try await eventually { try await configMaps.getIfExists("gizmo-g1") == nil })
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
            let success = try metrics.expectCounter(
                "controller_runtime_reconcile_total",
                [("controller", "gizmo"), ("result", "success")]
            )
            #expect(success.totalValue >= 3)
            #expect(
                try metrics.expectGauge("controller_runtime_max_concurrent_reconciles", [("controller", "gizmo")])
                    .lastValue == 2
            )
            #expect(
                try metrics.expectCounter("workqueue_adds_total", [("name", "gizmo"), ("controller", "gizmo")])
                    .totalValue >= 3
            )
            _ = server
        }
    }

    @Test("errors requeue with backoff; terminal errors do not")
    func errorsAndTerminalErrors() async throws {
        try await withServerAndClient { _, client in
            try await Gizmo.install(client)
            let metrics = TestMetrics()
            let attempts = Locked<[String: Int]>([:])
            struct Transient: Error {}
            struct Fatal: Error {}
            let controller = Controller(
                name: "flaky",
                watching: client.resource(Gizmo.type, namespace: nil),
                logger: testLogger(),
                metricsFactory: metrics,
                reconciler: ReconcileFunction { key in
                    let count = attempts.withLock {
                        $0[key.name, default: 0] += 1
                        return $0[key.name]!
                    }
                    if key.name == "fatal" { throw TerminalError(Fatal()) }
                    if count < 3 { throw Transient() }
                    return .done
                }
            )
            let group = ServiceGroup(configuration: .init(services: [controller], logger: testLogger()))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                let gizmos = client.resource(Gizmo.type, namespace: "default")
                _ = try await gizmos.create(Gizmo.object("flaky"))
                _ = try await gizmos.create(Gizmo.object("fatal"))
                #expect(await eventually { attempts.value["flaky"] == 3 })
                try await Task.sleep(for: .milliseconds(300))
                #expect(attempts.value["fatal"] == 1)
                #expect(attempts.value["flaky"] == 3)
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
            #expect(
                try metrics.expectCounter("controller_runtime_reconcile_errors_total", [("controller", "flaky")])
                    .totalValue == 3
            )
            #expect(
                try metrics.expectCounter(
                    "controller_runtime_terminal_reconcile_errors_total",
                    [("controller", "flaky")]
                )
                .totalValue == 1
            )
            #expect(
                try metrics.expectCounter("workqueue_retries_total", [("name", "flaky"), ("controller", "flaky")])
                    .totalValue == 2
            )
        }
    }

    @Test("a cache whose list the server forbids fails the controller after the sync timeout, naming it and the 403")
    func cacheSyncTimeout() async throws {
        try await withServerAndClient { server, client in
            // RBAC without list on Secrets: every list of them is refused, so that cache never syncs.
            server.injectFailures(code: 403, count: 1_000_000, pathContains: "/secrets", method: "GET")
            let calls = Locked(0)
            var configuration = Controller<ConfigMap>.Configuration()
            configuration.cacheSyncTimeout = .milliseconds(500)
            let controller = Controller(
                name: "forbidden",
                watching: client.resource(ConfigMap.self, namespace: "default"),
                configuration: configuration,
                logger: testLogger(),
                reconciler: ReconcileFunction { _ in
                    calls.withLock { $0 += 1 }
                    return .done
                }
            )
            .watches(client.resource(Secret.self, namespace: "default")) { _ in [] }
            let error = await #expect(throws: ControllerError.self) { try await controller.run() }
            #expect(error?.code == .cacheSyncTimeout)
            let message = error?.message ?? ""
            #expect(message.contains("secrets in namespace default"), "\(message)")
            #expect(message.contains("403"), "\(message)")
            #expect(!message.contains("configmaps"), "the ConfigMap cache synced: \(message)")
            #expect(calls.value == 0, "no worker starts on incomplete caches")
        }
    }

    @Test("watches(mapsFirstList: false) maps nothing of the first list, and every later change")
    func firstListNotMapped() async throws {
        try await withServerAndClient { server, client in
            let secrets = client.resource(Secret.self, namespace: "default")
            for index in 0..<3 { _ = try await secrets.create(Secret(name: "s\(index)", namespace: "default")) }
            let mapped = Locked<[String]>([])
            let reconciled = Locked<[String]>([])
            let controller = Controller(
                name: "first-list",
                watching: client.resource(ConfigMap.self, namespace: "default"),
                logger: testLogger(),
                reconciler: ReconcileFunction { key in
                    reconciled.withLock { $0.append(key.name) }
                    return .done
                }
            )
            .watches(secrets, mapsFirstList: false) { secret in
                mapped.withLock { $0.append(secret.metadata.name ?? "") }
                return [ObjectKey(namespace: "default", name: "from-\(secret.metadata.name ?? "")")]
            }
            let group = ServiceGroup(configuration: .init(services: [controller], logger: testLogger()))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                _ = try await client.resource(ConfigMap.self, namespace: "default").create(
                    ConfigMap(name: "primary", namespace: "default")
                )
                #expect(await eventually { reconciled.value.contains("primary") })
                #expect(mapped.value.isEmpty, "the first list was mapped: \(mapped.value)")
                _ = try await secrets.create(Secret(name: "later", namespace: "default"))
                #expect(await eventually { reconciled.value.contains("from-later") })
                #expect(mapped.value == ["later"])
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
            _ = server
        }
    }

    @Test("services added with running(_:) start only once every cache synced, and stop with the controller")
    func runningServices() async throws {
        try await withServerAndClient { server, client in
            let configMaps = client.resource(ConfigMap.self, namespace: "default")
            _ = try await configMaps.create(ConfigMap(name: "seen", namespace: "default"))
            let store = Store<ConfigMap>()
            let sawAtStart = Locked<[String]?>(nil)
            let controller = Controller(
                name: "periodic",
                watching: configMaps,
                store: store,
                logger: testLogger(),
                reconciler: ReconcileFunction { _ in .done }
            )
            .running(
                ServiceFunction {
                    sawAtStart.withLock { $0 = store.keys.map(\.name) }
                    try await Task.sleep(for: .seconds(3600))
                }
            )
            let group = ServiceGroup(configuration: .init(services: [controller], logger: testLogger()))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                #expect(await eventually { sawAtStart.value != nil })
                #expect(sawAtStart.value == ["seen"])
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
            _ = server
        }
    }

    @Test("KubeClient runs as a Service and shuts its HTTP clients down on graceful shutdown")
    func clientAsService() async throws {
        try await KubeTestServer.withRunning(logger: testLogger()) { server in
            let client = try KubeClient(
                configuration: testClientConfiguration(server.url),
                logger: testLogger()
            )
            let group = ServiceGroup(configuration: .init(services: [client], logger: testLogger()))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                #expect(try await client.resource(Namespace.self).get("default").metadata.name == "default")
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
            let error = await #expect(throws: KubeError.self) {
                try await client.resource(Namespace.self).get("default")
            }
            #expect(error?.code == .transport)
        }
    }
}
