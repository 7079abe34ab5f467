// TargetReconciler.swift: level-triggered reconciliation of one ProfilingTarget: finalizer → resolve → is it in
// the agent configuration (``AgentSynchronizer``) → probe its backend (``BackendProbes``) → its Grafana datasource
// → status, written only when it changed. Deletion: out of the agent configuration, then the datasource, then the
// finalizer.
//
// A reconcile runs when something it reads changed (the target, its Secrets, Service or pods, the agent's
// rollout, its backend's probe result) or its own timer is due (a Grafana retry): nothing is requeued just in case.

import Foundation
import HearthAPI
import KubeClient
import KubeModel
import KubeRuntime
import Logging
import Metrics

/// The reconciler of one ProfilingTarget.
final class TargetReconciler: Sendable {
    let configuration: OperatorConfiguration
    let stores: OperatorStores
    let client: KubeClient
    let logger: Logger
    let agent: AgentSynchronizer
    let probes: BackendProbes
    /// Grafana datasource provisioning; nil without `--grafana-url`.
    let datasources: DatasourceSynchronizer?
    let recorder: EventRecorder?
    let enqueue: AsyncStream<ObjectKey>.Continuation

    init(
        client: KubeClient,
        configuration: OperatorConfiguration,
        stores: OperatorStores,
        agent: AgentSynchronizer,
        probes: BackendProbes,
        datasources: DatasourceSynchronizer?,
        recorder: EventRecorder?,
        enqueue: AsyncStream<ObjectKey>.Continuation,
        logger: Logger
    ) {
        self.client = client
        self.configuration = configuration
        self.stores = stores
        self.agent = agent
        self.probes = probes
        self.datasources = datasources
        self.recorder = recorder
        self.enqueue = enqueue
        self.logger = logger
    }

    var resolver: TargetResolver {
        TargetResolver(configuration: self.configuration, lookup: StoreLookup(stores: self.stores))
    }

    func reconcile(_ key: ObjectKey) async throws -> ReconcileResult {
        var logger = self.logger
        logger[metadataKey: "k8s.object"] = "\(key)"
        guard var target = self.stores.targets.get(key) else {
            // Gone (finalizer already removed): make sure it left the configuration.
            self.probes.forget(key)
            self.agent.forget(key)
            return .done
        }
        let targets = self.client.resource(ProfilingTarget.self, namespace: key.namespace)
        let finalizers = target.metadata.finalizers ?? []

        if target.metadata.isBeingDeleted {
            guard finalizers.contains(ProfilingTarget.finalizer) else { return .done }
            self.probes.forget(key)
            switch self.agent.inclusion(of: self.resolver.resolve(target)) {
            case .current: break
            // Reconciled again once the configuration no longer holds it.
            case .pending: return .done
            case .failed(let error): throw error
            }
            try await self.removeDatasource(of: target)
            try await self.removeFinalizer(target, client: targets)
            logger.info("target left the agent configuration; finalizer removed")
            return .done
        }
        if !finalizers.contains(ProfilingTarget.finalizer) {
            target = try await self.addFinalizer(target, client: targets)
        }

        let resolved = self.resolver.resolve(target)
        // A target the configuration does not hold as it is yet waits for the agent sync, which reconciles it
        // again: its status then says how that went. A failed sync is written to the status at once.
        var agentFailure: OperatorError?
        switch self.agent.inclusion(of: resolved) {
        case .current: break
        case .pending: return .done
        case .failed(let error): agentFailure = error
        }

        var probe: ProbeResult?
        if resolved.violations.isEmpty, !resolved.suspended, resolved.backendProblem == nil,
            let url = resolved.pyroscopeURL
        {
            let (result, othersChanged) = await self.probes.probe(url: url, tenantID: resolved.tenantID, for: key)
            probe = result
            // The backend's other targets show the old result: theirs changed too.
            for other in othersChanged { self.enqueue.yield(other) }
        } else {
            self.probes.forget(key)
        }
        let (datasource, datasourceRetry) = await self.syncDatasource(target, resolved)
        let pods = self.pods(of: target)
        let observation = TargetObservation(
            generation: target.metadata.generation ?? 0,
            resolved: resolved,
            probe: probe,
            rollout: self.agent.rollout(for: resolved),
            matchedPods: pods.count(where: { !$0.isFinished }),
            datasource: datasource,
            agentProblem: agentFailure.map {
                TargetProblem(
                    reason: ConditionReason.applyFailed,
                    message: "\($0.message) failed: \($0.cause.map { "\($0)" } ?? "")"
                )
            },
            degradedNodes: self.degradedNodes(among: pods)
        )
        let previous = target.status
        let status = TargetStatusComputer.compute(observation, previous: previous)
        if status != previous {
            var intent = ProfilingTarget(name: key.name, namespace: key.namespace)
            intent.status = status
            do {
                _ = try await targets.applyStatus(intent, fieldManager: self.configuration.fieldManager, force: true)
            } catch {
                throw OperatorError(code: .statusFailed, message: "status of \(key)", cause: error)
            }
            await self.recordTransition(
                target,
                from: previous.condition(ConditionType.ready),
                to: status.condition(ConditionType.ready)
            )
            await self.recordTransition(
                target,
                from: previous.condition(ConditionType.datasourceSynced),
                to: status.condition(ConditionType.datasourceSynced)
            )
        }
        // Only the datasource has a timer of its own; probes and rollouts come back as events
        // (``BackendProbes/refresh(now:)``, ``FreshLeases``, the agent sync).
        return datasourceRetry.map { .requeue(after: $0) } ?? .done
    }

    /// Events only when Ready or DatasourceSynced changes (status or reason). First sight is news only when it is a
    /// failure: a new target that is simply in progress says so in its status, and 1,000 of them should not cost
    /// 1,000 Events.
    func recordTransition(_ target: ProfilingTarget, from old: Condition?, to new: Condition?) async {
        guard let recorder = self.recorder, let new, old?.status != new.status || old?.reason != new.reason else {
            return
        }
        if old == nil, new.status != "False" { return }
        let type: EventRecorder.EventType = new.status == "False" ? .warning : .normal
        await recorder.record(
            target,
            type: type,
            reason: new.reason ?? "Unknown",
            action: "Reconcile",
            note: "\(new.type ?? "")=\(new.status ?? "Unknown"): \(new.message ?? "")"
        )
    }

    /// The pods a target selects, from the cache.
    func pods(of target: ProfilingTarget) -> [Pod] {
        self.stores.pods(in: target.metadata.namespace ?? "", selectedBy: target.spec.selector ?? LabelSelector())
    }

    /// The degraded agents among the nodes running a target's pods.
    func degradedNodes(among pods: [Pod], now: Date = Date()) -> DegradedNodes {
        let namespace = self.configuration.namespace
        return DegradedNodes.among(pods, now: now) { name in
            self.stores.agentLeases.get(namespace: namespace, name: name)
        }
    }

    // MARK: Finalizer

    func addFinalizer(
        _ target: ProfilingTarget,
        client: ResourceClient<ProfilingTarget>
    ) async throws -> ProfilingTarget {
        do {
            return try await client.addFinalizer(
                ProfilingTarget.finalizer,
                to: target,
                fieldManager: self.configuration.fieldManager
            )
        } catch {
            throw OperatorError(
                code: .finalizerFailed,
                message: "adding the finalizer to \(target.objectKey)",
                cause: error
            )
        }
    }

    func removeFinalizer(_ target: ProfilingTarget, client: ResourceClient<ProfilingTarget>) async throws {
        do {
            try await client.removeFinalizer(
                ProfilingTarget.finalizer,
                from: target,
                fieldManager: self.configuration.fieldManager
            )
        } catch let error as KubeError where error.code == .notFound {
            return
        } catch {
            throw OperatorError(
                code: .finalizerFailed,
                message: "removing the finalizer from \(target.objectKey)",
                cause: error
            )
        }
    }
}
