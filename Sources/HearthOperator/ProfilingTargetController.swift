// ProfilingTargetController.swift: the controller wiring: what is watched and which keys each change enqueues.
//
// Primary: ProfilingTargets. Secrets and Services map to the targets referencing them (store indexes), Pods to the
// targets of their namespace whose selector matches, the agent DaemonSet to every target (its rollout is part of
// each status) and to the agent key, the other owned objects to the agent key. An agent Lease maps to every target
// when its revision changes, to the targets with pods on its node when its degradation changes, and to none when
// it is merely renewed.

import HearthAPI
import KubeClient
import KubeModel
import KubeRuntime
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// Builds the controller for ProfilingTargets.
public enum ProfilingTargetController {
    /// The controller (a Service) and its reconciler. It opens 11 watches: the client's
    /// `maxConcurrentWatches` must allow them (the default does).
    public static func make(
        client: KubeClient,
        configuration: OperatorConfiguration,
        prober: any PyroscopeProber,
        recorder: EventRecorder?,
        logger: Logger,
        metricsFactory: any MetricsFactory = MetricsSystem.factory,
        controllerConfiguration: Controller<ProfilingTarget>.Configuration? = nil
    ) -> (controller: Controller<ProfilingTarget>, reconciler: ProfilingTargetReconciler) {
        let stores = OperatorStores()
        let reconciler = ProfilingTargetReconciler(
            client: client,
            configuration: configuration,
            stores: stores,
            prober: prober,
            recorder: recorder,
            logger: logger,
            metricsFactory: metricsFactory
        )
        var settings = controllerConfiguration ?? Controller<ProfilingTarget>.Configuration()
        if controllerConfiguration == nil { settings.maxConcurrentReconciles = configuration.workers }
        let watchNamespace = configuration.watchNamespace
        let operatorNamespace = configuration.namespace
        let ownedSelector = configuration.ownedSelector
        let targets = stores.targets
        let pods = stores.pods
        let agentLeases = stores.agentLeases

        let reportedLeases = ReportedLeases()

        let controller = Controller(
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
        .watches(client.resource(Pod.self, namespace: watchNamespace), store: stores.pods) { pod in
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
        .reconcileOn(reconciler.affectedTargets)
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
