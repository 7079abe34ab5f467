// ProfilingTargetController.swift: the controller wiring: what is watched, which keys each change enqueues, and
// which reconciler a key goes to (``OperatorReconciler``: the agent key to ``AgentSynchronizer``, targets to
// ``TargetReconciler``).
//
// Primary: ProfilingTargets. Secrets and Services map to the targets referencing them (store indexes), Pods to the
// targets of their namespace whose selector matches, the agent DaemonSet to every target (its rollout is part of
// each status) and to the agent key, the other owned objects (RBAC included) to the agent key. An agent Lease maps
// to every target when its revision changes, to the targets with pods on its node when its degradation changes,
// and to none when it is merely renewed. Periodic tasks (backend probes, stale Leases, the Grafana sweep) run beside
// the workers and enqueue only the targets whose status they change.

import HearthAPI
import KubeClient
import KubeModel
import KubeRuntime
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// The controller's reconciler: the agent key goes to the ``AgentSynchronizer``, every other key (a target's) to the
/// ``TargetReconciler``.
public final class OperatorReconciler: Reconciler {
    public let stores: OperatorStores
    public let agent: AgentSynchronizer
    let target: TargetReconciler
    let probes: BackendProbes
    let reconcileCount = Mutex(0)

    init(stores: OperatorStores, agent: AgentSynchronizer, target: TargetReconciler, probes: BackendProbes) {
        self.stores = stores
        self.agent = agent
        self.target = target
        self.probes = probes
    }

    public func reconcile(_ key: ObjectKey) async throws -> ReconcileResult {
        defer { self.reconcileCount.withLock { $0 += 1 } }
        if key == AgentKey {
            try await self.agent.sync()
            return .done
        }
        return try await self.target.reconcile(key)
    }

    /// Reconciles finished so far (tests and benchmarks).
    public var reconciles: Int { self.reconcileCount.withLock { $0 } }

    /// The number of agent syncs so far.
    public var agentSyncs: Int { self.agent.syncs }
}

/// A task run once per period until cancelled (the controller runs it while it leads).
struct PeriodicTask: ServiceLifecycle.Service {
    let period: Duration
    let body: @Sendable () async -> Void

    func run() async throws {
        while !Task.isCancelled {
            try await Task.sleep(for: self.period)
            await self.body()
        }
    }
}

/// Builds the controller for ProfilingTargets.
public enum ProfilingTargetController {
    /// The controller (a Service) and its reconciler. It opens 13 watches: the client's
    /// `maxConcurrentWatches` must allow them (the default, 32, does).
    public static func make(
        client: KubeClient,
        configuration: OperatorConfiguration,
        prober: any PyroscopeProber,
        recorder: EventRecorder?,
        logger: Logger,
        metricsFactory: any MetricsFactory = MetricsSystem.factory,
        controllerConfiguration: Controller<ProfilingTarget>.Configuration? = nil
    ) -> (controller: Controller<ProfilingTarget>, reconciler: OperatorReconciler) {
        let stores = OperatorStores()
        let (keys, enqueue) = AsyncStream.makeStream(of: ObjectKey.self)
        // The agent is synced once at start, before the targets (its key is queued first): drift while no
        // operator ran is corrected, and the first targets find the configuration they are in.
        enqueue.yield(AgentKey)
        let agent = AgentSynchronizer(
            client: client,
            configuration: configuration,
            stores: stores,
            enqueue: enqueue,
            logger: logger
        )
        let probes = BackendProbes(
            prober,
            ttl: configuration.probeCacheTTL,
            readyPeriod: configuration.readyRequeue,
            notReadyPeriod: configuration.notReadyRequeue
        )
        let datasources = configuration.grafana.map { settings in
            DatasourceSynchronizer(
                settings: settings,
                operatorNamespace: configuration.namespace,
                kube: client,
                logger: logger,
                metricsFactory: metricsFactory
            )
        }
        let target = TargetReconciler(
            client: client,
            configuration: configuration,
            stores: stores,
            agent: agent,
            probes: probes,
            datasources: datasources,
            recorder: recorder,
            enqueue: enqueue,
            logger: logger
        )
        let reconciler = OperatorReconciler(stores: stores, agent: agent, target: target, probes: probes)
        var settings = controllerConfiguration ?? Controller<ProfilingTarget>.Configuration()
        if controllerConfiguration == nil { settings.maxConcurrentReconciles = configuration.workers }
        let watchNamespace = configuration.watchNamespace
        let operatorNamespace = configuration.namespace
        let ownedSelector = configuration.ownedSelector
        let targets = stores.targets
        let pods = stores.pods
        let agentLeases = stores.agentLeases

        let reportedLeases = ReportedLeases()
        let freshLeases = FreshLeases()

        var controller = Controller(
            name: "profilingtarget",
            watching: client.resource(ProfilingTarget.self, namespace: watchNamespace),
            store: stores.targets,
            configuration: settings,
            logger: logger,
            metricsFactory: metricsFactory,
            reconciler: reconciler
        )
        .watches(client.resource(Secret.self, namespace: watchNamespace), store: stores.secrets) { secret in
            targets.byIndex("secret", "\(secret.metadata.namespace ?? "")/\(secret.metadata.name ?? "")").map(
                \.objectKey
            )
        }
        .watches(client.resource(Service.self, namespace: watchNamespace), store: stores.services) { service in
            targets.byIndex("service", "\(service.metadata.namespace ?? "")/\(service.metadata.name ?? "")").map(
                \.objectKey
            )
        }
        // Pods are many: their first list maps nothing, since every target is reconciled at start anyway.
        .watches(client.resource(Pod.self, namespace: watchNamespace), store: stores.pods, mapsFirstList: false) {
            pod in
            targets.byIndex("namespace", pod.metadata.namespace ?? "").filter { target in
                (target.spec.selector ?? LabelSelector()).matches(pod.metadata.labels)
            }.map(\.objectKey)
        }
        .watches(
            client.resource(DaemonSet.self, namespace: operatorNamespace),
            store: stores.daemonSets,
            configuration: .init(labelSelector: ownedSelector)
        ) { _ in
            [AgentKey] + targets.keys
        }
        .watches(
            client.resource(ConfigMap.self, namespace: operatorNamespace),
            store: stores.configMaps,
            configuration: .init(labelSelector: ownedSelector)
        ) { _ in [AgentKey] }
        .watches(
            client.resource(Secret.self, namespace: operatorNamespace),
            store: stores.ownedSecrets,
            configuration: .init(labelSelector: ownedSelector)
        ) { _ in [AgentKey] }
        .watches(
            client.resource(ServiceAccount.self, namespace: operatorNamespace),
            store: stores.serviceAccounts,
            configuration: .init(labelSelector: ownedSelector)
        ) { _ in [AgentKey] }
        .watches(
            client.resource(ClusterRole.self),
            store: stores.clusterRoles,
            configuration: .init(labelSelector: ownedSelector)
        ) { _ in [AgentKey] }
        .watches(
            client.resource(ClusterRoleBinding.self),
            store: stores.clusterRoleBindings,
            configuration: .init(labelSelector: ownedSelector)
        ) { _ in [AgentKey] }
        .watches(
            client.resource(Role.self, namespace: operatorNamespace),
            store: stores.leaseRoles,
            configuration: .init(labelSelector: ownedSelector)
        ) { _ in [AgentKey] }
        .watches(
            client.resource(RoleBinding.self, namespace: operatorNamespace),
            store: stores.leaseRoleBindings,
            configuration: .init(labelSelector: ownedSelector)
        ) { _ in [AgentKey] }
        .watches(
            client.resource(Lease.self, namespace: operatorNamespace),
            store: stores.agentLeases,
            configuration: .init(labelSelector: AgentLease.labelSelector)
        ) { lease in
            // Called after the cache applied the event: a Lease missing from it was deleted.
            let present = agentLeases.get(namespace: lease.metadata.namespace, name: lease.metadata.name ?? "") != nil
            let change = reportedLeases.change(lease, present: present)
            if change.revision { return targets.keys }
            guard change.degradation, let node = AgentLease.node(leaseName: lease.metadata.name ?? "") else {
                return []
            }
            return DegradedNodes.targets(onNode: node, pods: pods, targets: targets)
        }
        .reconcileOn(keys)
        // Time-based work, once per period for all targets: backends probed again, Leases gone stale (or renewed
        // after going stale) without an event. Only the targets whose status that changes are reconciled.
        .running(
            PeriodicTask(period: max(.seconds(1), min(configuration.notReadyRequeue, configuration.readyRequeue) / 6)) {
                for key in await probes.refresh() { enqueue.yield(key) }
            }
        )
        .running(
            PeriodicTask(period: AgentLease.renewInterval) {
                if freshLeases.changed(agentLeases.list(namespace: operatorNamespace)) {
                    for key in targets.keys { enqueue.yield(key) }
                }
            }
        )
        if let datasources {
            controller = controller.running(
                DatasourceSweep(synchronizer: datasources, targets: targets, resolver: target.resolver)
            )
        }
        return (controller, reconciler)
    }
}

/// What each agent Lease last reported, to tell a change of revision or degradation from a renewal.
final class ReportedLeases: Sendable {
    struct Report: Equatable {
        var revision: String
        /// Bounded, as the status shows it: a change past the bound changes no status.
        var degradation: String?
    }

    struct Change: Equatable {
        /// Another revision than last seen, or a new Lease.
        var revision: Bool
        /// A degradation set, changed or cleared (a deleted Lease clears it).
        var degradation: Bool
    }

    private let reports = Mutex<[String: Report]>([:])

    /// What `lease` changes; `present` is false when the event deleted it, which forgets it.
    func change(_ lease: Lease, present: Bool) -> Change {
        let name = lease.metadata.name ?? ""
        let report = Report(
            revision: AgentLease.revision(of: lease) ?? "",
            degradation: present ? AgentLease.degradation(of: lease) : nil
        )
        let previous = self.reports.withLock { reports in
            present ? reports.updateValue(report, forKey: name) : reports.removeValue(forKey: name)
        }
        return Change(
            revision: previous?.revision != report.revision,
            degradation: previous?.degradation != report.degradation
        )
    }
}
