// ProfilingTargetAPITests.swift: crds/ matches the Swift types, the schema says what the issue asks, and the
// in-code validation mirrors the CEL rules.

import Foundation
import HearthAPI
import KubeModel
import Testing

/// The repository root (this file is Tests/HearthAPITests/ProfilingTargetAPITests.swift).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

@Suite("ProfilingTarget API")
struct ProfilingTargetAPITests {
    @Test("crds/ is exactly what the Swift types generate (run `hearth-operator crds` after changing them)")
    func crdsDoNotDrift() throws {
        let path = repositoryRoot.appendingPathComponent("crds").appendingPathComponent(ProfilingTarget.crdFileName)
        let committed = try String(contentsOf: path, encoding: .utf8)
        let generated = YAMLRendering.document(ProfilingTarget.customResourceDefinition.json)
        #expect(committed == generated, "crds/ drifted from HearthAPI: run `swift run hearth-operator crds`")
        let files = try FileManager.default.contentsOfDirectory(
            atPath: repositoryRoot.appendingPathComponent("crds").path
        )
        #expect(files == [ProfilingTarget.crdFileName])
    }

    @Test("the CRD: namespaced, short name pt, status subresource, printer columns")
    func crdShape() throws {
        let crd = ProfilingTarget.customResourceDefinition
        #expect(crd.metadata.name == "profilingtargets.profiling.hearth.dev")
        #expect(crd.spec.scope == "Namespaced")
        #expect(crd.spec.names.shortNames == ["pt"])
        let version = try #require(crd.spec.versions?.first)
        #expect(version.name == "v1alpha1")
        #expect(version.subresources?.status != nil)
        let columns = (version.additionalPrinterColumns ?? []).compactMap(\.name)
        #expect(columns == ["Ready", "Reason", "Pods", "Nodes", "Degraded", "Pyroscope", "Datasource", "Age"])
        let degradedColumn = try #require(version.additionalPrinterColumns?.first { $0.name == "Degraded" })
        #expect(degradedColumn.type == "integer" && degradedColumn.jsonPath == ".status.agent.degradedNodes")
        #expect(degradedColumn.priority == nil, "kubectl get pt shows it without -o wide")
        let schema = try #require(version.schema?.openAPIV3Schema)
        let spec = try #require(schema[path: ["properties", "spec"]])
        #expect(spec["required"] == ["selector"])
        #expect(spec[path: ["properties", "sampleRate", "minimum"]] == 1)
        #expect(spec[path: ["properties", "sampleRate", "maximum"]] == 1000)
        #expect(spec[path: ["properties", "selector", "properties", "namespace"]] == nil)
        let rules = spec[path: ["properties", "pyroscope", "x-kubernetes-validations"]]?.arrayValue ?? []
        #expect(rules.contains { $0["rule"] == "has(self.serviceRef) != has(self.url)" })
        let conditions = try #require(schema[path: ["properties", "status", "properties", "conditions"]])
        #expect(conditions["x-kubernetes-list-type"] == "map")
        #expect(conditions["x-kubernetes-list-map-keys"] == ["type"])
        // The degraded nodes an agent reports are bounded in the schema too: the API server refuses more.
        let agent = try #require(schema[path: ["properties", "status", "properties", "agent", "properties"]])
        #expect(agent[path: ["degradedNodes", "type"]] == "integer")
        let degraded = try #require(agent["degraded"])
        #expect(degraded["maxItems"] == .int(Int64(AgentStatus.maxListedDegradedNodes)))
        #expect(degraded["x-kubernetes-list-map-keys"] == ["node"])
        #expect(degraded[path: ["items", "properties", "reason", "maxLength"]] == 256)
        #expect(degraded[path: ["items", "required"]] == ["node", "reason"])
    }

    @Test("every schema node has a type, and every object a description", arguments: [ProfilingTarget.schema.json])
    func structural(_ root: JSONObject) {
        func walk(_ node: JSONValue, _ path: String) {
            #expect(node["type"] != nil, "\(path) has no type")
            for (key, child) in node["properties"]?.objectValue ?? [:] { walk(child, path + "." + key) }
            if let items = node["items"] { walk(items, path + "[]") }
            if let values = node["additionalProperties"], values.objectValue != nil { walk(values, path + "{}") }
        }
        walk(.object(root), "")
    }

    static let violationCases: [(String, @Sendable (inout ProfilingTargetSpec) -> Void, String?)] = [
        ("valid", { _ in }, nil),
        (
            "both backends", { $0.pyroscope?.serviceRef = ServiceReference(name: "p") },
            "exactly one of pyroscope.serviceRef and pyroscope.url"
        ),
        (
            "no backend in pyroscope", { $0.pyroscope?.url = nil },
            "exactly one of pyroscope.serviceRef and pyroscope.url"
        ),
        (
            "basic and bearer",
            {
                var basic = BasicAuth()
                basic.username = "u"
                basic.passwordSecretRef = SecretKeyReference(name: "s", key: "k")
                $0.pyroscope?.basicAuth = basic
                $0.pyroscope?.bearerTokenSecretRef = SecretKeyReference(name: "s", key: "t")
            },
            "at most one of pyroscope.basicAuth and pyroscope.bearerTokenSecretRef"
        ),
        ("rate too high", { $0.sampleRate = 5000 }, "between 1 and 1000"),
        ("rate zero", { $0.sampleRate = 0 }, "between 1 and 1000"),
        ("unknown placeholder", { $0.serviceName = "{{cluster}}/x" }, "{{namespace}}"),
        ("reserved label", { $0.labels = ["service_name": "x"] }, "set by Hearth"),
        ("bad label name", { $0.labels = ["team-name": "x"] }, "must match"),
        ("bad url", { $0.pyroscope?.url = "ftp://x" }, "http:// or https://"),
        ("bad profile", { $0.profiles = ["memory"] }, "unsupported profile type"),
        (
            "In without values",
            { $0.selector = LabelSelector(matchExpressions: [LabelSelectorRequirement(key: "a", operator: "In")]) },
            "In and NotIn need values"
        ),
    ]

    @Test("validation mirrors the schema's CEL rules", arguments: violationCases.indices)
    func validation(_ index: Int) {
        let (name, mutate, expected) = Self.violationCases[index]
        var spec = ProfilingTargetSpec()
        spec.selector = LabelSelector(matchLabels: ["app": "x"])
        var backend = PyroscopeBackend()
        backend.url = "http://pyroscope:4040"
        spec.pyroscope = backend
        mutate(&spec)
        let violations = spec.violations()
        if let expected {
            #expect(violations.contains { $0.message.contains(expected) }, "\(name): \(violations)")
        } else {
            #expect(violations.isEmpty, "\(name): \(violations)")
        }
    }

    @Test("reasons used by the operator are valid metav1.Condition reasons")
    func reasons() {
        for reason in [
            ConditionReason.reconciling, ConditionReason.reconciled, ConditionReason.invalidSpec,
            ConditionReason.suspended,
            ConditionReason.secretNotFound, ConditionReason.secretKeyMissing, ConditionReason.noBackend,
            ConditionReason.serviceNotFound, ConditionReason.servicePortNotFound, ConditionReason.reachable,
            ConditionReason.unreachable, ConditionReason.notProbed, ConditionReason.agentPending,
            ConditionReason.agentRollingOut, ConditionReason.agentRolledOut, ConditionReason.datasourceSynced,
            ConditionReason.datasourceNotRequested, ConditionReason.grafanaNotConfigured,
            ConditionReason.grafanaUnreachable, ConditionReason.grafanaUnauthorized,
            ConditionReason.datasourceNameConflict, ConditionReason.datasourceReadOnly,
            ConditionReason.datasourceSpecConflict, ConditionReason.datasourceRejected,
            ConditionReason.progressing, ConditionReason.notStalled, ConditionReason.done,
            ConditionReason.nodesDegraded, ConditionReason.notDegraded,
        ] {
            #expect(ConditionReason.isValid(reason), "\(reason)")
        }
        #expect(!ConditionReason.isValid("not camel"))
    }

    @Test("YAML rendering quotes what a YAML 1.1 reader would misread")
    func yamlQuoting() {
        let yaml = YAMLRendering.document([
            "a": "yes", "b": "on", "c": "1.5", "d": "plain", "e": "{{x}}", "f": [1, "no"], "g": "y", "h": "N",
        ])
        // `y` and `N` too: go-yaml v2 (kubectl) reads them as booleans, Yams would write them plain (docs/design.md).
        #expect(
            yaml
                == "a: \"yes\"\nb: \"on\"\nc: \"1.5\"\nd: plain\ne: \"{{x}}\"\nf:\n- 1\n- \"no\"\ng: \"y\"\nh: \"N\"\n"
        )
    }
}
