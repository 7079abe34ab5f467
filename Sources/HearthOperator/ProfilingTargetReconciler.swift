// ProfilingTargetReconciler.swift: level-triggered reconciliation of ProfilingTargets and of the one shared agent
// (DaemonSet, ServiceAccount, RBAC, ConfigMap, Secret) they configure together.
//
// A target reconcile adds the finalizer, resolves the target, makes sure the running agent configuration matches
// it (one agent sync at a time, computed from the whole target cache, so a burst of targets costs few syncs),
// probes Pyroscope and writes the status only when it changed. The agent key (``AgentKey``) reconciles the
// agent objects alone (drift, deletion of the last target).

import Foundation
import HearthAPI
import KubeClient
import KubeModel
import KubeRuntime
import Logging
import Metrics
import Synchronization

/// The work-queue key of the shared agent (targets are namespaced, so it cannot collide with one).
public let AgentKey = ObjectKey(namespace: nil, name: "hearth-agent")

/// Informer caches the reconciler reads.
public struct OperatorStores: Sendable {
    public let targets: Store<ProfilingTarget>
    public let secrets: Store<Secret>
    public let services: Store<Service>
    public let pods: Store<Pod>
    public let daemonSets: Store<DaemonSet>
    public let configMaps: Store<ConfigMap>
    public let ownedSecrets: Store<Secret>
    public let serviceAccounts: Store<ServiceAccount>
    public let clusterRoles: Store<ClusterRole>
    public let clusterRoleBindings: Store<ClusterRoleBinding>
    /// The agents' node Leases: which configuration revision each node runs.
    public let agentLeases: Store<Lease>

    public init() {
        self.targets = Store(
            indexers: [
                "secret": { target in
                    target.spec.secretReferences.compactMap { reference in
                        reference.reference.name.map { "\(target.metadata.namespace ?? "")/\($0)" }
                    }
                },
                "service": { target in
                    guard let reference = target.spec.pyroscope?.serviceRef, let name = reference.name else {
                        return []
                    }
                    return ["\(reference.namespace ?? target.metadata.namespace ?? "")/\(name)"]
                },
                "namespace": StoreIndex.namespace(),
                "grafana": { target in target.spec.grafana != nil ? ["true"] : [] },
            ],
            transform: Store.stripManagedFields,
            // Thousands of targets, read one per reconcile: compact JSON is ~4x smaller than parsed trees.
            representation: .compactJSON
        )
        self.secrets = Store(transform: Self.secretWithoutBulk)
        self.services = Store(transform: Store.stripManagedFields)
        // Only a pod's namespace and labels (selector matching) and node (degraded agents) matter: keep those alone.
        self.pods = Store(
            indexers: ["namespace": StoreIndex.namespace(), "node": { pod in pod.spec.nodeName.map { [$0] } ?? [] }],
            transform: Self.podIdentityAndLabels
        )
        self.daemonSets = Store(transform: Store.stripManagedFields)
        self.configMaps = Store(transform: Store.stripManagedFields)
        self.ownedSecrets = Store(transform: Store.stripManagedFields)
        self.serviceAccounts = Store(transform: Store.stripManagedFields)
        self.clusterRoles = Store(transform: Store.stripManagedFields)
        self.clusterRoleBindings = Store(transform: Store.stripManagedFields)
        self.agentLeases = Store(transform: Self.leaseWithBoundedDegradation)
    }

    /// Secret types that never hold a Pyroscope credential but can be large and many: Helm keeps every release
    /// of every chart as one (up to hundreds of KiB each).
    static let typesWithoutCredentials: Set<String> = ["helm.sh/release.v1", "bootstrap.kubernetes.io/token"]

    /// A Secret without managedFields, and without its data when its type cannot hold a credential.
    @Sendable static func secretWithoutBulk(_ secret: Secret) -> Secret {
        var kept = Store<Secret>.stripManagedFields(secret)
        if let type = kept.type, Self.typesWithoutCredentials.contains(type) {
            kept.data = nil
            kept.metadata.annotations = nil
        }
        return kept
    }

    /// A pod reduced to what matching needs (name, namespace, uid, resourceVersion, labels, phase) and its node:
    /// a cluster's pods are many, and their specs and statuses large.
    @Sendable static func podIdentityAndLabels(_ pod: Pod) -> Pod {
        var reduced = Pod(name: pod.metadata.name ?? "", namespace: pod.metadata.namespace)
        reduced.metadata.uid = pod.metadata.uid
        reduced.metadata.resourceVersion = pod.metadata.resourceVersion
        reduced.metadata.labels = pod.metadata.labels
        if let phase = pod.status.phase { reduced.status.phase = phase }
        if let node = pod.spec.nodeName { reduced.spec.nodeName = node }
        return reduced
    }

    /// Whether every cache has listed once.
    public var allSynced: Bool {
        self.targets.hasSynced && self.secrets.hasSynced && self.services.hasSynced && self.pods.hasSynced
            && self.daemonSets.hasSynced && self.configMaps.hasSynced && self.ownedSecrets.hasSynced
            && self.serviceAccounts.hasSynced && self.clusterRoles.hasSynced && self.clusterRoleBindings.hasSynced
            && self.agentLeases.hasSynced
    }
}

/// Lookups from the informer caches.
struct StoreLookup: ClusterLookup {
    let stores: OperatorStores
    func secret(namespace: String, name: String) -> Secret? {
        self.stores.secrets.get(namespace: namespace, name: name)
    }
    func service(namespace: String, name: String) -> Service? {
        self.stores.services.get(namespace: namespace, name: name)
    }
}

/// The reconciler of ProfilingTargets and the shared agent.
public final class ProfilingTargetReconciler: Reconciler {
    struct Applied {
        var hash: String
        var resourceVersion: Int64?
    }

    struct AgentState {
        /// Target → fingerprint of its entry in the applied configuration.
        var entries: [ObjectKey: String] = [:]
        var revision: String?
        /// Recent revisions → their entries' fingerprints, so an agent that still runs an older revision counts
        /// for the targets that revision already held as they are now.
        var revisions = RevisionHistory()
        var present = false
        var syncedOnce = false
        /// Owned object (kind/name) → what was last applied.
        var applied: [String: Applied] = [:]
    }

    public let configuration: OperatorConfiguration
    public let stores: OperatorStores
    let client: KubeClient
    let logger: Logger
    let prober: CachingProber
    /// Grafana datasource provisioning; nil without `--grafana-url`.
    let datasources: DatasourceSynchronizer?
    let recorder: EventRecorder?
    let gate = AsyncGate()
    let state = Mutex(AgentState())
    /// Targets an agent sync affected: the controller reconciles them (``Controller/reconcileOn(_:)``).
    public let affectedTargets: AsyncStream<ObjectKey>
    let affected: AsyncStream<ObjectKey>.Continuation
    /// Agent syncs that ran (tests and benchmarks).
    let syncCount = Mutex(0)
    let reconcileCount = Mutex(0)

    public init(
        client: KubeClient,
        configuration: OperatorConfiguration,
        stores: OperatorStores,
        prober: any PyroscopeProber,
        recorder: EventRecorder?,
        logger: Logger,
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) {
        self.client = client
        self.configuration = configuration
        self.stores = stores
        self.prober = CachingProber(prober, ttl: configuration.probeCacheTTL)
        self.datasources = configuration.grafana.map { settings in
            DatasourceSynchronizer(
                settings: settings,
                operatorNamespace: configuration.namespace,
                kube: client,
                logger: logger,
                metricsFactory: metricsFactory
            )
        }
        self.recorder = recorder
        self.logger = logger
        (self.affectedTargets, self.affected) = AsyncStream.makeStream(of: ObjectKey.self)
    }

    var resolver: TargetResolver {
        TargetResolver(configuration: self.configuration, lookup: StoreLookup(stores: self.stores))
    }
    var renderer: AgentRenderer { AgentRenderer(configuration: self.configuration) }

    /// The number of agent syncs so far.
    public var agentSyncs: Int { self.syncCount.withLock { $0 } }

    static func fingerprint(_ resolved: ResolvedTarget) -> String? {
        guard let entry = resolved.entry else { return nil }
        return SHA256.hex(
            AgentRenderer.fingerprint(entry) + "\n" + resolved.secretVersions.joined(separator: ",")
        )
    }

    // MARK: Reconcile

    public func reconcile(_ key: ObjectKey) async throws -> ReconcileResult {
        defer { self.reconcileCount.withLock { $0 += 1 } }
        return try await self.reconcileOnce(key)
    }

    /// Reconciles finished so far (tests and benchmarks).
    public var reconciles: Int { self.reconcileCount.withLock { $0 } }

    func reconcileOnce(_ key: ObjectKey) async throws -> ReconcileResult {
        if key == AgentKey {
            try await self.syncAgent(reason: "agent objects changed")
            return .done
        }
        var logger = self.logger
        logger[metadataKey: "k8s.object"] = "\(key)"
        guard var target = self.stores.targets.get(key) else {
            // Gone (finalizer already removed): make sure it left the configuration.
            let stale = self.state.withLock { $0.entries[key] != nil || ($0.present && !$0.syncedOnce) }
            if stale { try await self.syncAgent(reason: "target \(key) deleted") }
            return .done
        }
        let targets = self.client.resource(ProfilingTarget.self, namespace: key.namespace)
        let finalizers = target.metadata.finalizers ?? []

        if target.metadata.isBeingDeleted {
            guard finalizers.contains(ProfilingTarget.finalizer) else { return .done }
            try await self.syncAgent(reason: "target \(key) being deleted")
            try await self.removeDatasource(of: target)
            try await self.removeFinalizer(target, client: targets)
            logger.info("target left the agent configuration; finalizer removed")
            return .done
        }
        if !finalizers.contains(ProfilingTarget.finalizer) {
            target = try await self.addFinalizer(target, client: targets)
        }

        let resolved = self.resolver.resolve(target)
        // A failed write of the agent objects is still written to the status (where it can be), then retried.
        var agentFailure: OperatorError?
        do {
            try await self.ensureIncluded(resolved)
        } catch let error as OperatorError where error.code == .applyFailed || error.code == .deleteFailed {
            agentFailure = error
        }

        var probe: ProbeResult?
        if resolved.violations.isEmpty, !resolved.suspended, resolved.backendProblem == nil,
            let url = resolved.pyroscopeURL
        {
            probe = await self.prober.probe(url: url, tenantID: resolved.tenantID)
        }
        let (datasource, datasourceRetry) = await self.syncDatasource(target, resolved)
        let observation = TargetObservation(
            generation: target.metadata.generation ?? 0,
            resolved: resolved,
            probe: probe,
            rollout: self.rollout(for: resolved),
            matchedPods: self.matchedPods(target),
            datasource: datasource,
            agentProblem: agentFailure.map {
                TargetProblem(
                    reason: ConditionReason.applyFailed,
                    message: "\($0.message) failed: \($0.cause.map { "\($0)" } ?? "")"
                )
            },
            degradedNodes: self.degradedNodes(target)
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
        if let agentFailure { throw agentFailure }
        let ready = status.condition(ConditionType.ready)?.status == "True"
        var requeue: Duration?
        if resolved.violations.isEmpty, !resolved.suspended {
            requeue = ready ? self.configuration.readyRequeue : self.configuration.notReadyRequeue
        }
        if let datasourceRetry { requeue = min(requeue ?? datasourceRetry, datasourceRetry) }
        return requeue.map { .requeue(after: $0) } ?? .done
    }

    /// Events only when Ready or DatasourceSynced changes (status or reason). First sight is news only when it is a failure: a new
    /// target that is simply in progress says so in its status, and 1,000 of them should not cost 1,000 Events.
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

    func matchedPods(_ target: ProfilingTarget) -> Int {
        self.pods(of: target).count(where: { !$0.isFinished })
    }

    func rollout(for resolved: ResolvedTarget, now: Date = Date()) -> AgentRollout {
        guard let fingerprint = Self.fingerprint(resolved) else { return .pending }
        let (entry, revisions) = self.state.withLock { ($0.entries[resolved.key], $0.revisions) }
        guard entry == fingerprint else { return .pending }
        guard
            let daemonSet = self.stores.daemonSets.get(
                namespace: self.configuration.namespace,
                name: self.configuration.agentName
            )
        else {
            return .progressing(desired: 0, ready: 0, message: "the agent DaemonSet is being created")
        }
        let status = daemonSet.status
        let desired = status.desiredNumberScheduled ?? 0
        let updated = status.updatedNumberScheduled ?? 0
        let available = status.numberAvailable ?? 0
        // Agents whose node Lease is fresh and names a revision that holds this target as it is now.
        let live = self.stores.agentLeases.list(namespace: self.configuration.namespace).filter { lease in
            guard AgentLease.isFresh(lease, now: now), let revision = AgentLease.revision(of: lease) else {
                return false
            }
            return revisions.fingerprint(of: resolved.key, in: revision) == fingerprint
        }.count
        let generation = daemonSet.metadata.generation ?? 0
        guard let observed = status.observedGeneration, observed >= generation else {
            return .progressing(
                desired: desired,
                ready: live,
                message:
                    "DaemonSet \(self.configuration.namespace)/\(self.configuration.agentName) generation \(generation) "
                    + "not yet observed by the DaemonSet controller"
            )
        }
        guard updated >= desired, available >= desired else {
            return .progressing(
                desired: desired,
                ready: live,
                message: "\(updated)/\(desired) nodes updated, \(available)/\(desired) available"
            )
        }
        guard live >= desired else {
            return .progressing(
                desired: desired,
                ready: live,
                message: "\(live)/\(desired) agents run the configuration that includes this target"
            )
        }
        return .complete(desired: desired, ready: live)
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

    // MARK: Agent

    /// Syncs the agent unless the applied configuration already matches this target.
    func ensureIncluded(_ resolved: ResolvedTarget) async throws {
        let expected = Self.fingerprint(resolved)
        func current() -> Bool {
            self.state.withLock { state in
                state.syncedOnce && state.entries[resolved.key] == expected && (!resolved.isActive || state.present)
            }
        }
        if current() { return }
        await self.gate.lock()
        defer { self.gate.unlock() }
        if current() { return }
        try await self.syncAgentLocked(reason: "target \(resolved.key) changed")
    }

    func syncAgent(reason: String) async throws {
        await self.gate.lock()
        defer { self.gate.unlock() }
        try await self.syncAgentLocked(reason: reason)
    }

    /// Computes the agent from every cached target and applies what differs. Must hold the gate. The controller
    /// starts reconciling only once every cache has synced, so the target cache is complete here.
    func syncAgentLocked(reason: String) async throws {
        self.syncCount.withLock { $0 += 1 }
        let resolver = self.resolver
        let resolved = self.stores.targets.map { resolver.resolve($0) }
        let active = resolved.contains { $0.isActive }
        var newEntries: [ObjectKey: String] = [:]
        var revision: String?
        if active {
            let objects = self.renderer.render(resolved)
            for target in resolved {
                if let fingerprint = Self.fingerprint(target) { newEntries[target.key] = fingerprint }
            }
            revision = objects.revision
            try await self.apply(objects)
        } else {
            try await self.deleteAgent()
        }
        let changed = self.state.withLock { state -> [ObjectKey] in
            let keys = Set(state.entries.keys).union(newEntries.keys)
            let changed = keys.filter { state.entries[$0] != newEntries[$0] }.sorted()
            let hashChanged = state.revision != revision
            state.entries = newEntries
            state.revision = revision
            if let revision { state.revisions.record(revision, entries: newEntries) }
            state.present = active
            state.syncedOnce = true
            // A new configuration affects every included target's rollout state.
            return hashChanged ? keys.sorted() : changed
        }
        self.logger.debug(
            "agent synced",
            metadata: [
                "sync.reason": "\(reason)", "agent.targets": "\(newEntries.count)", "agent.present": "\(active)",
            ]
        )
        for key in changed { self.affected.yield(key) }
    }

    func apply(_ objects: AgentObjects) async throws {
        let namespace = self.configuration.namespace
        try await self.applyIfNeeded(
            objects.serviceAccount,
            live: self.stores.serviceAccounts.get(namespace: namespace, name: self.configuration.agentName)
        )
        try await self.applyIfNeeded(
            objects.clusterRole,
            live: self.stores.clusterRoles.get(namespace: nil, name: self.configuration.clusterRoleName)
        )
        try await self.applyIfNeeded(
            objects.clusterRoleBinding,
            live: self.stores.clusterRoleBindings.get(namespace: nil, name: self.configuration.clusterRoleName)
        )
        // Not cached (the owned client's watch pool is full): `applyIfNeeded` asks the server when in doubt.
        try await self.applyIfNeeded(objects.leaseRole, live: nil)
        try await self.applyIfNeeded(objects.leaseRoleBinding, live: nil)
        try await self.applyIfNeeded(
            objects.configMap,
            live: self.stores.configMaps.get(namespace: namespace, name: self.configuration.configMapName)
        )
        try await self.applyIfNeeded(
            objects.secret,
            live: self.stores.ownedSecrets.get(namespace: namespace, name: self.configuration.secretName)
        )
        try await self.applyIfNeeded(
            objects.daemonSet,
            live: self.stores.daemonSets.get(namespace: namespace, name: self.configuration.agentName)
        )
    }

    func applyIfNeeded<Object: KubeResource>(_ object: Object, live: Object?) async throws {
        var intentObject = object.object
        let hash = ApplyPlan.stamp(&intentObject)
        let intent = Object(object: intentObject)
        let id = "\(Object.resourceType.kind)/\(object.metadata.name ?? "")"
        let resource = self.client.resource(Object.self, namespace: object.metadata.namespace)
        let previous = self.state.withLock { $0.applied[id] }
        if let live {
            if ApplyPlan.satisfies(live.json, intent.json) { return }
            // The cache may lag behind our own last apply.
            if let previous, previous.hash == hash, let applied = previous.resourceVersion,
                let seen = live.metadata.resourceVersion.flatMap(Int64.init), seen < applied
            {
                return
            }
        } else if let previous, previous.hash == hash {
            // Not cached (yet?): ask the server before writing.
            if let current = try? await resource.getIfExists(object.metadata.name ?? ""),
                ApplyPlan.satisfies(current.json, intent.json)
            {
                return
            }
        }
        do {
            let result = try await resource.apply(intent, fieldManager: self.configuration.fieldManager, force: true)
            self.state.withLock {
                $0.applied[id] = Applied(
                    hash: hash,
                    resourceVersion: result.metadata.resourceVersion.flatMap(Int64.init)
                )
            }
            self.logger.info(
                "applied agent object",
                metadata: ["k8s.kind": "\(Object.resourceType.kind)", "k8s.name": "\(object.metadata.name ?? "")"]
            )
        } catch {
            throw OperatorError(code: .applyFailed, message: "server-side apply of \(id)", cause: error)
        }
    }

    func deleteAgent() async throws {
        let namespace = self.configuration.namespace
        let configuration = self.configuration
        try await self.deleteIfPresent(
            DaemonSet.self,
            namespace: namespace,
            name: configuration.agentName,
            cached: self.stores.daemonSets.get(namespace: namespace, name: configuration.agentName) != nil
        )
        try await self.deleteIfPresent(
            ConfigMap.self,
            namespace: namespace,
            name: configuration.configMapName,
            cached: self.stores.configMaps.get(namespace: namespace, name: configuration.configMapName) != nil
        )
        try await self.deleteIfPresent(
            Secret.self,
            namespace: namespace,
            name: configuration.secretName,
            cached: self.stores.ownedSecrets.get(namespace: namespace, name: configuration.secretName) != nil
        )
        try await self.deleteIfPresent(
            ServiceAccount.self,
            namespace: namespace,
            name: configuration.agentName,
            cached: self.stores.serviceAccounts.get(namespace: namespace, name: configuration.agentName) != nil
        )
        try await self.deleteIfPresent(
            RoleBinding.self,
            namespace: namespace,
            name: configuration.agentName,
            cached: true
        )
        try await self.deleteIfPresent(Role.self, namespace: namespace, name: configuration.agentName, cached: true)
        try await self.deleteIfPresent(
            ClusterRoleBinding.self,
            namespace: nil,
            name: configuration.clusterRoleName,
            cached: self.stores.clusterRoleBindings.get(namespace: nil, name: configuration.clusterRoleName) != nil
        )
        try await self.deleteIfPresent(
            ClusterRole.self,
            namespace: nil,
            name: configuration.clusterRoleName,
            cached: self.stores.clusterRoles.get(namespace: nil, name: configuration.clusterRoleName) != nil
        )
    }

    func deleteIfPresent<Object: KubeResource>(
        _ type: Object.Type,
        namespace: String?,
        name: String,
        cached: Bool
    ) async throws {
        let id = "\(Object.resourceType.kind)/\(name)"
        let known = self.state.withLock { $0.applied.removeValue(forKey: id) != nil }
        guard cached || known else { return }
        do {
            try await self.client.resource(Object.self, namespace: namespace).delete(
                name,
                propagationPolicy: .background
            )
            self.logger.info(
                "deleted agent object",
                metadata: ["k8s.kind": "\(Object.resourceType.kind)", "k8s.name": "\(name)"]
            )
        } catch let error as KubeError where error.code == .notFound {
            return
        } catch {
            throw OperatorError(code: .deleteFailed, message: "deleting \(id)", cause: error)
        }
    }
}
