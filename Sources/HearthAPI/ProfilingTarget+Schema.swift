// ProfilingTarget+Schema.swift: the OpenAPI schema of every ProfilingTarget type, next to the types, and the
// CustomResourceDefinition generated from them (crds/ is written from here by `hearth-operator crds`).

import KubeModel

/// Patterns shared by the schema and the in-code validation.
public enum Patterns {
    /// DNS-1035 label (Service names).
    public static let dns1035Label = "^[a-z]([-a-z0-9]*[a-z0-9])?$"
    /// DNS-1123 subdomain (Secret names).
    public static let dns1123Subdomain = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
    /// Secret data keys.
    public static let secretKey = "^[-._a-zA-Z0-9]+$"
    /// Pyroscope URLs.
    public static let url = "^https?://[^\\s/?#]+(/[^\\s]*)?$"
    /// Tenant ids (Cortex/Mimir/Pyroscope rules).
    public static let tenantID = "^[a-zA-Z0-9!._*'()-]+$"
    /// Profile label names (Prometheus label names).
    public static let labelName = "^[a-zA-Z_][a-zA-Z0-9_]*$"
    /// Service name templates: text plus known placeholders.
    public static let serviceName = "^([^{}]|\\{\\{(namespace|workload|pod|container|node)\\}\\})+$"
    /// Grafana datasource uids.
    public static let datasourceUID = "^[a-zA-Z0-9-_]{1,40}$"
    /// Label keys that Hearth sets itself.
    public static let reservedLabels = [
        "service_name", "namespace", "pod", "container", "node", "workload", "__name__",
    ]
}

extension ProfilingTargetSpec {
    public static var schema: OpenAPISchema {
        .object(
            "What to profile (pods of this namespace only) and where to send the profiles.",
            properties: [
                "selector": LabelSelector.schema,
                "profiles": .array(
                    "Profile types to collect.",
                    items: .string("A profile type.", enum: ["cpu"]),
                    minItems: 1,
                    maxItems: 1,
                    listType: "set",
                    default: ["cpu"]
                ),
                "sampleRate": .integer(
                    "Sampling frequency in Hz for the pods of this target.",
                    format: "int32",
                    minimum: 1,
                    maximum: 1000,
                    default: Int64(Self.defaultSampleRate)
                ),
                "serviceName": .string(
                    "The service_name label: text plus {{namespace}}, {{workload}}, {{pod}}, {{container}}, {{node}}.",
                    pattern: Patterns.serviceName,
                    maxLength: 253,
                    default: Self.defaultServiceName
                ),
                "labels": .map(
                    "Extra labels added to every profile of this target.",
                    values: .string("A label value.", maxLength: 1024),
                    maxProperties: 32,
                    rules: [
                        .init(
                            "self.all(k, k.matches('\(Patterns.labelName)'))",
                            message: "label names must match \(Patterns.labelName)"
                        ),
                        .init(
                            "self.all(k, !(k in \(Patterns.reservedLabels.map { "'\($0)'" }.joined(separator: ", ").bracketed)))",
                            message:
                                "labels must not set \(Patterns.reservedLabels.joined(separator: ", ")): Hearth sets them"
                        ),
                    ]
                ),
                "pyroscope": PyroscopeBackend.schema,
                "grafana": GrafanaDatasourceRequest.schema,
                "suspend": .boolean("Stop profiling without deleting the target.", default: false),
            ],
            required: ["selector"]
        )
    }
}

extension String {
    fileprivate var bracketed: String { "[" + self + "]" }
}

extension LabelSelector {
    public static var schema: OpenAPISchema {
        .object(
            "Pods of the target's own namespace; there is no namespace field. An empty selector matches every pod.",
            properties: [
                "matchLabels": .map("Labels a pod must carry.", values: .string("A label value.", maxLength: 63)),
                "matchExpressions": .array(
                    "Label requirements a pod must meet.",
                    items: .object(
                        "A label requirement.",
                        properties: [
                            "key": .string("The label key.", minLength: 1, maxLength: 317),
                            "operator": .string(
                                "How the key relates to the values.",
                                enum: ["In", "NotIn", "Exists", "DoesNotExist"]
                            ),
                            "values": .array("Values for In and NotIn.", items: .string("A value.", maxLength: 63)),
                        ],
                        required: ["key", "operator"],
                        rules: [
                            .init(
                                "(self.operator in ['In', 'NotIn']) == (has(self.values) && size(self.values) > 0)",
                                message: "In and NotIn need values; Exists and DoesNotExist take none"
                            )
                        ]
                    ),
                    maxItems: 16
                ),
            ]
        )
    }
}

extension PyroscopeBackend {
    public static var schema: OpenAPISchema {
        .object(
            "The Pyroscope backend; omit it to use the operator's default backend.",
            properties: [
                "serviceRef": ServiceReference.schema,
                "url": .string("The Pyroscope base URL (write path).", pattern: Patterns.url, maxLength: 2048),
                "tenantID": .string("Sent as X-Scope-OrgID.", pattern: Patterns.tenantID, maxLength: 150),
                "basicAuth": BasicAuth.schema,
                "bearerTokenSecretRef": SecretKeyReference.schema(
                    "A bearer token, from a Secret in the target's namespace."
                ),
            ],
            rules: [
                .init(
                    "has(self.serviceRef) != has(self.url)",
                    message: "set exactly one of pyroscope.serviceRef and pyroscope.url"
                ),
                .init(
                    "!(has(self.basicAuth) && has(self.bearerTokenSecretRef))",
                    message: "set at most one of pyroscope.basicAuth and pyroscope.bearerTokenSecretRef"
                ),
            ]
        )
    }
}

extension ServiceReference {
    public static var schema: OpenAPISchema {
        .object(
            "A Pyroscope Service; the operator resolves it to http://NAME.NAMESPACE.svc:PORT.",
            properties: [
                "name": .string("The Service name.", pattern: Patterns.dns1035Label, maxLength: 63),
                "namespace": .string(
                    "The Service namespace (default: the target's).",
                    pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                    maxLength: 63
                ),
                "port": .integer("The Service port.", format: "int32", minimum: 1, maximum: 65535, default: 4040),
                "scheme": .string("http or https.", enum: ["http", "https"], default: "http"),
            ],
            required: ["name"]
        )
    }
}

extension BasicAuth {
    public static var schema: OpenAPISchema {
        .object(
            "HTTP basic authentication.",
            properties: [
                "username": .string("The user name.", minLength: 1, maxLength: 256),
                "passwordSecretRef": SecretKeyReference.schema(
                    "The password, from a Secret in the target's namespace."
                ),
            ],
            required: ["username", "passwordSecretRef"]
        )
    }
}

extension SecretKeyReference {
    public static func schema(_ description: String) -> OpenAPISchema {
        .object(
            description,
            properties: [
                "name": .string("The Secret name.", pattern: Patterns.dns1123Subdomain, maxLength: 253),
                "key": .string("The key in the Secret's data.", pattern: Patterns.secretKey, maxLength: 253),
            ],
            required: ["name", "key"]
        )
    }
}

extension GrafanaDatasourceRequest {
    public static var schema: OpenAPISchema {
        .object(
            "The Grafana datasource to provision for this target's profiles.",
            properties: [
                "datasource": .object(
                    "The datasource, keyed by uid (never taken over by name).",
                    properties: [
                        "name": .string("The datasource name shown in Grafana.", minLength: 1, maxLength: 190),
                        "uid": .string(
                            "The datasource uid.",
                            pattern: Patterns.datasourceUID,
                            maxLength: 40,
                            rules: [.init("self == oldSelf", message: "grafana.datasource.uid is immutable")]
                        ),
                    ]
                ),
                "url": .string(
                    "The Pyroscope URL as Grafana reaches it (default: the target's Pyroscope URL).",
                    pattern: Patterns.url,
                    maxLength: 2048
                ),
            ]
        )
    }
}

extension Condition {
    /// metav1.Condition, as apimachinery's markers describe it.
    public static var schema: OpenAPISchema {
        .object(
            "A metav1.Condition.",
            properties: [
                "type": .string(
                    "The condition type.",
                    pattern:
                        "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
                    maxLength: 316
                ),
                "status": .string("True, False or Unknown.", enum: ["True", "False", "Unknown"]),
                "observedGeneration": .integer(
                    "The generation the condition was set for.",
                    format: "int64",
                    minimum: 0
                ),
                "lastTransitionTime": OpenAPISchema([
                    "type": "string", "format": "date-time", "description": "When the status last changed.",
                ]),
                "reason": .string(
                    "A CamelCase reason.",
                    pattern: "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
                    minLength: 1,
                    maxLength: 1024
                ),
                "message": .string("A human-readable message.", maxLength: 32768),
            ],
            required: ["type", "status", "lastTransitionTime", "reason", "message"]
        )
    }
}

extension ProfilingTargetStatus {
    public static var schema: OpenAPISchema {
        .object(
            "What the operator observed.",
            properties: [
                "observedGeneration": .integer("The generation last acted on.", format: "int64", minimum: 0),
                "conditions": .array(
                    "Ready, Reconciling, Stalled, AgentRolledOut, AgentDegraded, PyroscopeReachable, DatasourceSynced.",
                    items: Condition.schema,
                    maxItems: 16,
                    listType: "map",
                    listMapKeys: ["type"]
                ),
                "matchedPods": .integer("Pods the selector matches.", format: "int32", minimum: 0),
                "agent": .object(
                    "The shared agent DaemonSet's rollout.",
                    properties: [
                        "desiredNodes": .integer("Nodes that should run the agent.", format: "int32", minimum: 0),
                        "readyNodes": .integer("Nodes whose agent is ready.", format: "int32", minimum: 0),
                        "degradedNodes": .integer(
                            "Nodes running this target's pods whose agent reports itself degraded (it profiles them "
                                + "at a coarser grain than asked).",
                            format: "int32",
                            minimum: 0
                        ),
                        "degraded": .array(
                            "The first \(AgentStatus.maxListedDegradedNodes) of the degradedNodes by name, with what their "
                                + "agent reports.",
                            items: DegradedNode.schema,
                            maxItems: AgentStatus.maxListedDegradedNodes,
                            listType: "map",
                            listMapKeys: ["node"]
                        ),
                    ]
                ),
                "pyroscopeURL": .string("The Pyroscope URL the agent pushes to."),
                "grafana": .object(
                    "The Grafana datasource this target's profiles show in.",
                    properties: [
                        "uid": .string("The datasource uid."),
                        "name": .string("The datasource name."),
                    ]
                ),
            ]
        )
    }
}

extension DegradedNode {
    public static var schema: OpenAPISchema {
        .object(
            "A node whose agent reports itself degraded.",
            properties: [
                "node": .string("The node.", maxLength: 253),
                "reason": .string(
                    "What its agent reports, in one line of at most \(AgentLease.maxDegradationLength) characters.",
                    maxLength: AgentLease.maxDegradationLength
                ),
            ],
            required: ["node", "reason"]
        )
    }
}

extension ProfilingTarget {
    /// The full schema of the resource.
    public static var schema: OpenAPISchema {
        var schema = OpenAPISchema.object(
            "ProfilingTarget asks Hearth to profile the pods a selector picks in this namespace and to send the "
                + "profiles to Pyroscope.",
            properties: [
                "apiVersion": .string("The API version."),
                "kind": .string("The kind."),
                "metadata": OpenAPISchema(["type": "object"]),
                "spec": ProfilingTargetSpec.schema,
                "status": ProfilingTargetStatus.schema,
            ],
            required: ["spec"]
        )
        schema.json.removeValue(forKey: "description")
        schema.json["description"] = .string(
            "ProfilingTarget asks Hearth to profile the pods a selector picks in this namespace and to send the "
                + "profiles to Pyroscope."
        )
        return schema
    }

    /// `kubectl get pt` columns.
    public static var printerColumns: [CustomResourceColumnDefinition] {
        func column(
            _ name: String,
            _ type: String,
            _ path: String,
            _ description: String,
            priority: Int? = nil
        )
            -> CustomResourceColumnDefinition
        {
            var column = CustomResourceColumnDefinition()
            column.name = name
            column.type = type
            column.jsonPath = path
            column.description = description
            column.priority = priority
            return column
        }
        return [
            column("Ready", "string", #".status.conditions[?(@.type=="Ready")].status"#, "Whether profiles flow."),
            column("Reason", "string", #".status.conditions[?(@.type=="Ready")].reason"#, "Why (not) ready."),
            column("Pods", "integer", ".status.matchedPods", "Pods the selector matches."),
            column("Nodes", "integer", ".status.agent.readyNodes", "Nodes running a ready agent."),
            column(
                "Degraded",
                "integer",
                ".status.agent.degradedNodes",
                "Nodes running its pods whose agent is degraded (coarser attribution)."
            ),
            column("Pyroscope", "string", ".status.pyroscopeURL", "Where profiles go.", priority: 1),
            column("Datasource", "string", ".status.grafana.name", "The Grafana datasource showing them.", priority: 1),
            column("Age", "date", ".metadata.creationTimestamp", "Age."),
        ]
    }

    /// The CustomResourceDefinition, generated from the Swift types.
    public static var customResourceDefinition: CustomResourceDefinition {
        let type = Self.resourceType
        var crd = CustomResourceDefinition(name: type.qualifiedName)
        crd.metadata.labels = ["app.kubernetes.io/part-of": "hearth"]
        crd.metadata.annotations = ["helm.sh/resource-policy": "keep"]
        crd.spec.group = type.group
        crd.spec.scope = "Namespaced"
        var names = CustomResourceDefinitionNames()
        names.plural = type.plural
        names.singular = "profilingtarget"
        names.kind = type.kind
        names.listKind = type.kind + "List"
        names.shortNames = ["pt"]
        names.categories = ["hearth"]
        crd.spec.names = names
        var version = CustomResourceDefinitionVersion()
        version.name = type.version
        version.served = true
        version.storage = true
        var subresources = CustomResourceSubresources()
        subresources.status = AnyObjectView()
        version.subresources = subresources
        var validation = CustomResourceValidation()
        validation.openAPIV3Schema = .object(Self.schema.json)
        version.schema = validation
        version.additionalPrinterColumns = Self.printerColumns
        crd.spec.versions = [version]
        return crd
    }
}

extension ProfilingTarget {
    /// The file name of the CRD in crds/.
    public static let crdFileName = "profiling.hearth.dev_profilingtargets.yaml"
}
