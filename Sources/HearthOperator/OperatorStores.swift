// OperatorStores.swift: the informer caches both reconcilers read (what each keeps of its objects, and the
// indexes that map a change to the targets it concerns), and lookups from them for target resolution.

import HearthAPI
import KubeModel
import KubeRuntime

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
    /// The Role and RoleBinding that let the agents write their node Leases.
    public let leaseRoles: Store<Role>
    public let leaseRoleBindings: Store<RoleBinding>
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
        // Only a pod's namespace and labels (selector matching) and node (degraded agents) matter: keep those alone,
        // as compact JSON (a cluster has tens of thousands). A target reads its pods through the label index of its
        // most selective matchLabels pair, so it parses its own pods, not its namespace's.
        self.pods = Store(
            indexers: [
                "namespace": StoreIndex.namespace(), "node": { pod in pod.spec.nodeName.map { [$0] } ?? [] },
                "label": { pod in
                    let namespace = pod.metadata.namespace ?? ""
                    return (pod.metadata.labels ?? [:]).map {
                        Self.labelIndexValue(namespace: namespace, $0.key, $0.value)
                    }
                },
            ],
            transform: Self.podIdentityAndLabels,
            representation: .compactJSON
        )
        self.daemonSets = Store(transform: Store.stripManagedFields)
        self.configMaps = Store(transform: Store.stripManagedFields)
        self.ownedSecrets = Store(transform: Store.stripManagedFields)
        self.serviceAccounts = Store(transform: Store.stripManagedFields)
        self.clusterRoles = Store(transform: Store.stripManagedFields)
        self.clusterRoleBindings = Store(transform: Store.stripManagedFields)
        self.leaseRoles = Store(transform: Store.stripManagedFields)
        self.leaseRoleBindings = Store(transform: Store.stripManagedFields)
        self.agentLeases = Store(transform: Self.leaseWithBoundedDegradation)
    }

    /// The "label" index value of a pod's label.
    static func labelIndexValue(namespace: String, _ key: String, _ value: String) -> String {
        "\(namespace)/\(key)=\(value)"
    }

    /// The pods of `namespace` that `selector` selects: through the label index when it has matchLabels (the pair
    /// with the fewest pods), else every pod of the namespace.
    func pods(in namespace: String, selectedBy selector: LabelSelector) -> [Pod] {
        let candidates: [Pod]
        let values = (selector.matchLabels ?? [:]).map { Self.labelIndexValue(namespace: namespace, $0.key, $0.value) }
        if let fewest = values.min(by: { self.pods.count(byIndex: "label", $0) < self.pods.count(byIndex: "label", $1) }
        ) {
            candidates = self.pods.byIndex("label", fewest)
        } else {
            candidates = self.pods.byIndex("namespace", namespace)
        }
        return candidates.filter { selector.matches($0.metadata.labels) }
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
            && self.leaseRoles.hasSynced && self.leaseRoleBindings.hasSynced && self.agentLeases.hasSynced
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
