// AgentSynchronizer.swift: the one shared agent (DaemonSet, ServiceAccount, RBAC, ConfigMap, Secret), reconciled
// under its own key (``AgentKey``): resolve every cached target → render → apply what differs, or delete every
// agent object once no target is active. It remembers which entry of each target the applied configuration holds,
// and the entries of recent revisions, so a target's status can tell whether the agents run it.
//
// Targets never write agent objects: a target that the applied configuration does not hold as it is now asks for
// a sync (``inclusion(of:)``) and is reconciled again when the sync changed it. A burst of target changes thus
// costs few syncs, each computed from the whole target cache.

import Foundation
import HearthAPI
import HearthBase
import KubeClient
import KubeModel
import KubeRuntime
import Logging
import Synchronization

/// The work-queue key of the shared agent (targets are namespaced, so it cannot collide with one).
public let AgentKey = ObjectKey(namespace: nil, name: "hearth-agent")

/// Reconciles the shared agent objects from every target.
public final class AgentSynchronizer: Sendable {
    struct Applied {
        var hash: String
        var resourceVersion: Int64?
    }

    struct State {
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
        /// Why the last sync failed; nil once one succeeds.
        var failure: OperatorError?
        /// Targets that found themselves not (yet) in the configuration: reconciled again after the next sync.
        var waiting: Set<ObjectKey> = []
        var syncs = 0
    }

    /// Whether the applied configuration holds a target as it is now.
    enum Inclusion: Equatable {
        case current
        /// A sync is asked for; the target is reconciled again once it ran.
        case pending
        /// The last sync failed: its error belongs in the target's status (the agent key retries with backoff).
        case failed(OperatorError)

        static func == (lhs: Inclusion, rhs: Inclusion) -> Bool {
            switch (lhs, rhs) {
            case (.current, .current), (.pending, .pending): true
            case (.failed(let a), .failed(let b)): a.description == b.description
            default: false
            }
        }
    }

    let configuration: OperatorConfiguration
    let stores: OperatorStores
    let client: KubeClient
    let logger: Logger
    /// Keys for the controller's queue (``Controller/reconcileOn(_:)``): the agent key, or targets a sync affected.
    let enqueue: AsyncStream<ObjectKey>.Continuation
    let state = Mutex(State())

    init(
        client: KubeClient,
        configuration: OperatorConfiguration,
        stores: OperatorStores,
        enqueue: AsyncStream<ObjectKey>.Continuation,
        logger: Logger
    ) {
        self.client = client
        self.configuration = configuration
        self.stores = stores
        self.enqueue = enqueue
        self.logger = logger
    }

    var resolver: TargetResolver {
        TargetResolver(configuration: self.configuration, lookup: StoreLookup(stores: self.stores))
    }

    /// The number of syncs so far (tests and benchmarks).
    public var syncs: Int { self.state.withLock { $0.syncs } }

    /// What identifies a target's entry in the configuration: the entry and the Secret versions its credentials
    /// came from (a rotated password changes the Secret, not the entry). Nil when the target has no entry.
    static func fingerprint(_ resolved: ResolvedTarget) -> String? {
        guard let entry = resolved.entry else { return nil }
        return SHA256.hex(
            AgentRenderer.fingerprint(entry) + "\n" + resolved.secretVersions.joined(separator: ",")
        )
    }

    // MARK: What targets ask

    /// Whether the applied configuration holds `resolved` as it is now; if not, asks for a sync.
    func inclusion(of resolved: ResolvedTarget) -> Inclusion {
        let expected = Self.fingerprint(resolved)
        let inclusion = self.state.withLock { state -> Inclusion in
            if state.syncedOnce, state.entries[resolved.key] == expected, !resolved.isActive || state.present {
                return .current
            }
            state.waiting.insert(resolved.key)
            // While syncs fail the agent key retries with backoff; asking again would skip it.
            return state.failure.map { Inclusion.failed($0) } ?? .pending
        }
        if inclusion == .pending { self.enqueue.yield(AgentKey) }
        return inclusion
    }

    /// A target left the cache (its finalizer is gone): asks for a sync if the configuration may still hold it.
    func forget(_ key: ObjectKey) {
        let stale = self.state.withLock { state in
            state.waiting.remove(key)
            return state.entries[key] != nil || (state.present && !state.syncedOnce)
        }
        if stale { self.enqueue.yield(AgentKey) }
    }

    /// How far the agents run the configuration that holds `resolved` as it is now.
    func rollout(for resolved: ResolvedTarget, now: Date = Date()) -> AgentRollout {
        guard let fingerprint = Self.fingerprint(resolved) else { return .pending }
        let (entry, revisions) = self.state.withLock { ($0.entries[resolved.key], $0.revisions) }
        guard entry == fingerprint else { return .pending }
        let namespace = self.configuration.namespace
        let agentName = self.configuration.agentName
        guard let daemonSet = self.stores.daemonSets.get(namespace: namespace, name: agentName) else {
            return .progressing(desired: 0, ready: 0, message: "the agent DaemonSet is being created")
        }
        let status = daemonSet.status
        let desired = status.desiredNumberScheduled ?? 0
        let updated = status.updatedNumberScheduled ?? 0
        let available = status.numberAvailable ?? 0
        // Agents whose node Lease is fresh and names a revision that holds this target as it is now.
        let live = self.stores.agentLeases.list(namespace: namespace).filter { lease in
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
                message: "DaemonSet \(namespace)/\(agentName) generation \(generation) "
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

    // MARK: Sync

    /// Computes the agent from every cached target and applies what differs (or deletes it when no target is
    /// active). The controller starts reconciling only once every cache has synced, so the target cache is
    /// complete here; the queue never runs the agent key twice at once, so syncs never overlap.
    func sync() async throws {
        self.state.withLock { $0.syncs += 1 }
        let resolver = self.resolver
        let resolved = self.stores.targets.map { resolver.resolve($0) }
        let active = resolved.contains { $0.isActive }
        var newEntries: [ObjectKey: String] = [:]
        var revision: String?
        do {
            if active {
                let objects = AgentRenderer(configuration: self.configuration).render(resolved)
                for target in resolved {
                    if let fingerprint = Self.fingerprint(target) { newEntries[target.key] = fingerprint }
                }
                revision = objects.revision
                try await self.apply(objects)
            } else {
                try await self.deleteAgent()
            }
        } catch let error as OperatorError {
            // The targets waiting for this sync show the failure (once per new failure, not per retry).
            let waiting = self.state.withLock { state -> [ObjectKey] in
                let news = state.failure?.description != error.description
                state.failure = error
                return news ? state.waiting.sorted() : []
            }
            for key in waiting { self.enqueue.yield(key) }
            throw error
        }
        let affected = self.state.withLock { state -> [ObjectKey] in
            let keys = Set(state.entries.keys).union(newEntries.keys)
            // A new configuration affects every included target's rollout state.
            var affected = state.revision != revision ? keys : keys.filter { state.entries[$0] != newEntries[$0] }
            affected.formUnion(state.waiting)
            state.waiting.removeAll()
            state.failure = nil
            state.entries = newEntries
            state.revision = revision
            if let revision { state.revisions.record(revision, entries: newEntries) }
            state.present = active
            state.syncedOnce = true
            return affected.sorted()
        }
        self.logger.debug(
            "agent synced",
            metadata: ["agent.targets": "\(newEntries.count)", "agent.present": "\(active)"]
        )
        for key in affected { self.enqueue.yield(key) }
    }

    func apply(_ objects: AgentObjects) async throws {
        let namespace = self.configuration.namespace
        let stores = self.stores
        let agentName = self.configuration.agentName
        let clusterRoleName = self.configuration.clusterRoleName
        try await self.applyIfNeeded(
            objects.serviceAccount,
            live: stores.serviceAccounts.get(namespace: namespace, name: agentName)
        )
        try await self.applyIfNeeded(
            objects.clusterRole,
            live: stores.clusterRoles.get(namespace: nil, name: clusterRoleName)
        )
        try await self.applyIfNeeded(
            objects.clusterRoleBinding,
            live: stores.clusterRoleBindings.get(namespace: nil, name: clusterRoleName)
        )
        try await self.applyIfNeeded(
            objects.leaseRole,
            live: stores.leaseRoles.get(namespace: namespace, name: agentName)
        )
        try await self.applyIfNeeded(
            objects.leaseRoleBinding,
            live: stores.leaseRoleBindings.get(namespace: namespace, name: agentName)
        )
        try await self.applyIfNeeded(
            objects.configMap,
            live: stores.configMaps.get(namespace: namespace, name: self.configuration.configMapName)
        )
        try await self.applyIfNeeded(
            objects.secret,
            live: stores.ownedSecrets.get(namespace: namespace, name: self.configuration.secretName)
        )
        try await self.applyIfNeeded(
            objects.daemonSet,
            live: stores.daemonSets.get(namespace: namespace, name: agentName)
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
            // Applied, yet not cached (the watch event is on its way, or it was deleted): ask the server.
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
        let agentName = self.configuration.agentName
        let clusterRoleName = self.configuration.clusterRoleName
        let stores = self.stores
        try await self.deleteIfPresent(
            DaemonSet.self,
            namespace: namespace,
            name: agentName,
            cached: stores.daemonSets.get(namespace: namespace, name: agentName) != nil
        )
        try await self.deleteIfPresent(
            ConfigMap.self,
            namespace: namespace,
            name: self.configuration.configMapName,
            cached: stores.configMaps.get(namespace: namespace, name: self.configuration.configMapName) != nil
        )
        try await self.deleteIfPresent(
            Secret.self,
            namespace: namespace,
            name: self.configuration.secretName,
            cached: stores.ownedSecrets.get(namespace: namespace, name: self.configuration.secretName) != nil
        )
        try await self.deleteIfPresent(
            ServiceAccount.self,
            namespace: namespace,
            name: agentName,
            cached: stores.serviceAccounts.get(namespace: namespace, name: agentName) != nil
        )
        try await self.deleteIfPresent(
            RoleBinding.self,
            namespace: namespace,
            name: agentName,
            cached: stores.leaseRoleBindings.get(namespace: namespace, name: agentName) != nil
        )
        try await self.deleteIfPresent(
            Role.self,
            namespace: namespace,
            name: agentName,
            cached: stores.leaseRoles.get(namespace: namespace, name: agentName) != nil
        )
        try await self.deleteIfPresent(
            ClusterRoleBinding.self,
            namespace: nil,
            name: clusterRoleName,
            cached: stores.clusterRoleBindings.get(namespace: nil, name: clusterRoleName) != nil
        )
        try await self.deleteIfPresent(
            ClusterRole.self,
            namespace: nil,
            name: clusterRoleName,
            cached: stores.clusterRoles.get(namespace: nil, name: clusterRoleName) != nil
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

/// Which agents' Leases are fresh, checked once per renewal interval: a Lease goes stale without any event (its
/// agent stopped renewing it), and a stale one renewed again brings no news to the Lease watch either (same
/// revision). Leases that appear or go are watch events already, so only a known Lease's flip counts.
final class FreshLeases: Sendable {
    let last = Mutex<[String: Bool]?>(nil)

    /// Whether a Lease seen at the last check went stale, or fresh again, since (the first check only records).
    func changed(_ leases: [Lease], now: Date = Date()) -> Bool {
        var fresh: [String: Bool] = [:]
        for lease in leases {
            if let name = lease.metadata.name { fresh[name] = AgentLease.isFresh(lease, now: now) }
        }
        return self.last.withLock { last in
            defer { last = fresh }
            guard let previous = last else { return false }
            return fresh.contains { name, isFresh in previous[name].map { $0 != isFresh } ?? false }
        }
    }
}
