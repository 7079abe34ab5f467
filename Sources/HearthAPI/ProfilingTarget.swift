// ProfilingTarget.swift: the ProfilingTarget custom resource (profiling.hearth.dev/v1alpha1), typed views over
// its JSON. These types, together with their schemas in ProfilingTarget+Schema.swift, are the source of truth
// for crds/ (`hearth-operator crds`).

import KubeModel

/// A namespaced request to profile the pods a selector picks in the target's own namespace.
public struct ProfilingTarget: KubeResource {
    public static let resourceType = ResourceType(
        group: "profiling.hearth.dev",
        version: "v1alpha1",
        kind: "ProfilingTarget",
        plural: "profilingtargets",
        namespaced: true
    )
    /// The finalizer that lets a deleted target leave the agent configuration cleanly.
    public static let finalizer = "profiling.hearth.dev/finalizer"
    /// Set to "true" on a target so that deleting it does not wait for its Grafana datasource to be removed (when
    /// Grafana is gone for good); the datasource may then stay behind in Grafana.
    public static let skipDatasourceCleanupAnnotation = "profiling.hearth.dev/skip-datasource-cleanup"

    public var object: JSONObject
    public init(object: JSONObject) { self.object = object }

    public var spec: ProfilingTargetSpec {
        get { self.view("spec") }
        set { self.setView("spec", newValue) }
    }
    public var status: ProfilingTargetStatus {
        get { self.view("status") }
        set { self.setView("status", newValue) }
    }
}

/// What to profile and where to send it.
public struct ProfilingTargetSpec: JSONView {
    public var object: JSONObject
    public init(object: JSONObject) { self.object = object }

    /// The default service name template.
    public static let defaultServiceName = "{{namespace}}/{{workload}}"
    /// The default sampling frequency in Hz.
    public static let defaultSampleRate = 99

    /// Pods of the target's own namespace. There is deliberately no namespace field.
    public var selector: LabelSelector? {
        get { self.get("selector") }
        set { self.set("selector", newValue) }
    }
    /// Profile types (`cpu`).
    public var profiles: [String]? {
        get { self.get("profiles") }
        set { self.set("profiles", newValue) }
    }
    /// Sampling frequency in Hz (1–1000, default 99).
    public var sampleRate: Int? {
        get { self.get("sampleRate") }
        set { self.set("sampleRate", newValue) }
    }
    /// The `service_name` template: literal text and `{{namespace}}`, `{{workload}}`, `{{pod}}`, `{{container}}`,
    /// `{{node}}`.
    public var serviceName: String? {
        get { self.get("serviceName") }
        set { self.set("serviceName", newValue) }
    }
    /// Extra labels added to every profile.
    public var labels: [String: String]? {
        get { self.get("labels") }
        set { self.set("labels", newValue) }
    }
    /// The Pyroscope backend; omitted means the operator's default backend.
    public var pyroscope: PyroscopeBackend? {
        get { self.get("pyroscope") }
        set { self.set("pyroscope", newValue) }
    }
    /// The Grafana datasource to provision (implemented by the Grafana reconciler).
    public var grafana: GrafanaDatasourceRequest? {
        get { self.get("grafana") }
        set { self.set("grafana", newValue) }
    }
    /// Stops profiling without deleting the target.
    public var suspend: Bool? {
        get { self.get("suspend") }
        set { self.set("suspend", newValue) }
    }

    /// Effective values with defaults applied (the CRD also defaults them).
    public var effectiveProfiles: [String] { (self.profiles ?? []).isEmpty ? ["cpu"] : self.profiles ?? ["cpu"] }
    public var effectiveSampleRate: Int { self.sampleRate ?? Self.defaultSampleRate }
    public var effectiveServiceName: String { self.serviceName ?? Self.defaultServiceName }
    public var isSuspended: Bool { self.suspend ?? false }
}

/// Where profiles go: a Service in the cluster or a URL, with an optional tenant and credentials.
public struct PyroscopeBackend: JSONView {
    public var object: JSONObject
    public init(object: JSONObject) { self.object = object }

    public var serviceRef: ServiceReference? {
        get { self.get("serviceRef") }
        set { self.set("serviceRef", newValue) }
    }
    public var url: String? {
        get { self.get("url") }
        set { self.set("url", newValue) }
    }
    /// Sent as `X-Scope-OrgID`.
    public var tenantID: String? {
        get { self.get("tenantID") }
        set { self.set("tenantID", newValue) }
    }
    public var basicAuth: BasicAuth? {
        get { self.get("basicAuth") }
        set { self.set("basicAuth", newValue) }
    }
    public var bearerTokenSecretRef: SecretKeyReference? {
        get { self.get("bearerTokenSecretRef") }
        set { self.set("bearerTokenSecretRef", newValue) }
    }
}

/// A Service by name, namespace (default: the target's) and port.
public struct ServiceReference: JSONView {
    public var object: JSONObject
    public init(object: JSONObject) { self.object = object }

    public init(name: String, namespace: String? = nil, port: Int? = nil) {
        self.object = [:]
        self.name = name
        self.namespace = namespace
        self.port = port
    }

    public static let defaultPort = 4040

    public var name: String? {
        get { self.get("name") }
        set { self.set("name", newValue) }
    }
    public var namespace: String? {
        get { self.get("namespace") }
        set { self.set("namespace", newValue) }
    }
    public var port: Int? {
        get { self.get("port") }
        set { self.set("port", newValue) }
    }
    /// `http` (default) or `https`.
    public var scheme: String? {
        get { self.get("scheme") }
        set { self.set("scheme", newValue) }
    }
}

/// HTTP basic authentication; the password comes from a Secret in the target's namespace.
public struct BasicAuth: JSONView {
    public var object: JSONObject
    public init(object: JSONObject) { self.object = object }

    public var username: String? {
        get { self.get("username") }
        set { self.set("username", newValue) }
    }
    public var passwordSecretRef: SecretKeyReference? {
        get { self.get("passwordSecretRef") }
        set { self.set("passwordSecretRef", newValue) }
    }
}

/// A key of a Secret in the target's namespace.
public struct SecretKeyReference: JSONView {
    public var object: JSONObject
    public init(object: JSONObject) { self.object = object }

    public init(name: String, key: String) {
        self.object = [:]
        self.name = name
        self.key = key
    }

    public var name: String? {
        get { self.get("name") }
        set { self.set("name", newValue) }
    }
    public var key: String? {
        get { self.get("key") }
        set { self.set("key", newValue) }
    }
}

/// The Grafana datasource a target asks for.
public struct GrafanaDatasourceRequest: JSONView {
    public var object: JSONObject
    public init(object: JSONObject) { self.object = object }

    public var datasource: DatasourceSpec? {
        get { self.get("datasource") }
        set { self.set("datasource", newValue) }
    }
    /// The Pyroscope URL as Grafana reaches it, when not the target's Pyroscope URL.
    public var url: String? {
        get { self.get("url") }
        set { self.set("url", newValue) }
    }
}

/// Name and uid of a Grafana datasource.
public struct DatasourceSpec: JSONView {
    public var object: JSONObject
    public init(object: JSONObject) { self.object = object }

    public var name: String? {
        get { self.get("name") }
        set { self.set("name", newValue) }
    }
    public var uid: String? {
        get { self.get("uid") }
        set { self.set("uid", newValue) }
    }
}

/// What the operator observed; never needed for correctness of the next reconcile.
public struct ProfilingTargetStatus: JSONView {
    public var object: JSONObject
    public init(object: JSONObject) { self.object = object }

    public var observedGeneration: Int64? {
        get { self.get("observedGeneration") }
        set { self.set("observedGeneration", newValue) }
    }
    public var conditions: [Condition]? {
        get { self.get("conditions") }
        set { self.set("conditions", newValue) }
    }
    /// Running pods the selector matches.
    public var matchedPods: Int? {
        get { self.get("matchedPods") }
        set { self.set("matchedPods", newValue) }
    }
    public var agent: AgentStatus? {
        get { self.get("agent") }
        set { self.set("agent", newValue) }
    }
    /// The Pyroscope push URL the agent uses for this target.
    public var pyroscopeURL: String? {
        get { self.get("pyroscopeURL") }
        set { self.set("pyroscopeURL", newValue) }
    }
    /// The Grafana datasource this target's profiles show in.
    public var grafana: GrafanaStatus? {
        get { self.get("grafana") }
        set { self.set("grafana", newValue) }
    }
}

/// The shared agent DaemonSet's rollout.
public struct AgentStatus: JSONView {
    public var object: JSONObject
    public init(object: JSONObject) { self.object = object }

    public init(desiredNodes: Int, readyNodes: Int) {
        self.object = [:]
        self.desiredNodes = desiredNodes
        self.readyNodes = readyNodes
    }

    public var desiredNodes: Int? {
        get { self.get("desiredNodes") }
        set { self.set("desiredNodes", newValue) }
    }
    public var readyNodes: Int? {
        get { self.get("readyNodes") }
        set { self.set("readyNodes", newValue) }
    }
    /// Nodes running this target's pods whose agent reports itself degraded (``AgentLease/degradedAnnotation``):
    /// it profiles them at a coarser grain than asked, for example with samples of nested cgroups counted under
    /// their container.
    public var degradedNodes: Int? {
        get { self.get("degradedNodes") }
        set { self.set("degradedNodes", newValue) }
    }
    /// The first ``maxListedDegradedNodes`` of those nodes by name, with what their agent reports.
    public var degraded: [DegradedNode]? {
        get { self.get("degraded") }
        set { self.set("degraded", newValue) }
    }

    /// A status lists this many degraded nodes at most, however many there are (``degradedNodes`` counts all).
    public static let maxListedDegradedNodes = 10
}

/// A node whose agent reports itself degraded, and its report (bounded: ``AgentLease/boundedDegradation(_:)``).
public struct DegradedNode: JSONView {
    public var object: JSONObject
    public init(object: JSONObject) { self.object = object }

    public init(node: String, reason: String) {
        self.object = [:]
        self.node = node
        self.reason = reason
    }

    public var node: String? {
        get { self.get("node") }
        set { self.set("node", newValue) }
    }
    public var reason: String? {
        get { self.get("reason") }
        set { self.set("reason", newValue) }
    }
}

/// The provisioned Grafana datasource.
public struct GrafanaStatus: JSONView {
    public var object: JSONObject
    public init(object: JSONObject) { self.object = object }

    public init(uid: String, name: String) {
        self.object = [:]
        self.uid = uid
        self.name = name
    }

    public var uid: String? {
        get { self.get("uid") }
        set { self.set("uid", newValue) }
    }
    public var name: String? {
        get { self.get("name") }
        set { self.set("name", newValue) }
    }
}
