// ServerSideApplyTests.swift: server-side apply on associative lists: list maps keyed by name (and by
// containerPort+protocol), sets, atomic lists, in built-in kinds and in CRD schemas (x-kubernetes-list-type).

import KubeClient
import KubeModel
import KubeTestServer
import Testing

@Suite("Server-side apply on associative lists", .timeLimit(.minutes(1)))
struct ServerSideApplyTests {
    static let daemonSets = ResourceType(
        group: "apps",
        version: "v1",
        kind: "DaemonSet",
        plural: "daemonsets",
        namespaced: true
    )

    static func daemonSet(_ containers: [JSONValue], tolerations: [JSONValue]? = nil) -> DynamicObject {
        var object = DynamicObject(daemonSets, name: "agent", namespace: "default")
        var podSpec: JSONObject = ["containers": .array(containers)]
        if let tolerations { podSpec["tolerations"] = .array(tolerations) }
        object.spec = [
            "selector": ["matchLabels": ["app": "agent"]],
            "template": ["metadata": ["labels": ["app": "agent"]], "spec": .object(podSpec)],
        ]
        return object
    }

    static func container(_ name: String, image: String, env: [String]? = nil, port: Int64? = nil) -> JSONValue {
        var container: JSONObject = ["name": .string(name), "image": .string(image)]
        if let env { container["env"] = .array(env.map { ["name": .string($0), "value": "1"] }) }
        if let port { container["ports"] = [["containerPort": .int(port), "protocol": "TCP"]] }
        return .object(container)
    }

    static func containers(_ object: DynamicObject) -> [String: JSONValue] {
        let items = object.spec?[path: ["template", "spec", "containers"]]?.arrayValue ?? []
        var result: [String: JSONValue] = [:]
        for item in items { result[item["name"]?.stringValue ?? ""] = item }
        return result
    }

    static func fields(_ object: DynamicObject, _ manager: String, operation: String = "Apply") -> JSONValue? {
        object.metadata.managedFields?.first { $0.manager == manager && $0.operation == operation }?.fieldsV1
    }

    static let containersPath = ["f:spec", "f:template", "f:spec", "f:containers"]

    @Test("two managers own different containers of one DaemonSet; re-applying one keeps the other's")
    func containersPerManager() async throws {
        try await withServerAndClient { _, client in
            let daemonSets = client.resource(Self.daemonSets, namespace: "default")
            _ = try await daemonSets.apply(
                Self.daemonSet([Self.container("agent", image: "agent:1", env: ["A"], port: 8080)]),
                fieldManager: "alpha"
            )
            let both = try await daemonSets.apply(
                Self.daemonSet([Self.container("sidecar", image: "sidecar:1")]),
                fieldManager: "beta"
            )
            #expect(Set(Self.containers(both).keys) == ["agent", "sidecar"])

            // managedFields name each item as the real server does, with "." for the item itself.
            let alpha = try #require(Self.fields(both, "alpha"))
            let agentKey = "k:{\"name\":\"agent\"}"
            #expect(alpha[path: Self.containersPath + [agentKey, "."]] == .object([:]))
            #expect(alpha[path: Self.containersPath + [agentKey, "f:image"]] == .object([:]))
            #expect(alpha[path: Self.containersPath + [agentKey, "f:env", "k:{\"name\":\"A\"}", "f:value"]] != nil)
            #expect(
                alpha[
                    path: Self.containersPath + [
                        agentKey, "f:ports", "k:{\"containerPort\":8080,\"protocol\":\"TCP\"}",
                    ]
                ]
                    != nil
            )
            #expect(alpha[path: Self.containersPath + ["k:{\"name\":\"sidecar\"}"]] == nil)
            let beta = try #require(Self.fields(both, "beta"))
            #expect(beta[path: Self.containersPath + ["k:{\"name\":\"sidecar\"}", "f:image"]] != nil)
            #expect(beta[path: Self.containersPath + [agentKey]] == nil)

            // alpha re-applies with a new image: beta's sidecar stays.
            let reapplied = try await daemonSets.apply(
                Self.daemonSet([Self.container("agent", image: "agent:2", env: ["A"], port: 8080)]),
                fieldManager: "alpha"
            )
            #expect(Self.containers(reapplied)["agent"]?["image"] == "agent:2")
            #expect(Self.containers(reapplied)["sidecar"]?["image"] == "sidecar:1")

            // beta adds an env var to alpha's container: env merges by name inside the item, no conflict.
            let sharedAgent = try await daemonSets.apply(
                Self.daemonSet([
                    Self.container("sidecar", image: "sidecar:1"),
                    ["name": "agent", "env": [["name": "B", "value": "1"]]],
                ]),
                fieldManager: "beta"
            )
            let env = Self.containers(sharedAgent)["agent"]?["env"]?.arrayValue?.compactMap { $0["name"]?.stringValue }
            #expect(env == ["A", "B"])
            #expect(Self.containers(sharedAgent)["agent"]?["image"] == "agent:2")
            let again = try await daemonSets.apply(
                Self.daemonSet([Self.container("agent", image: "agent:2", env: ["A"], port: 8080)]),
                fieldManager: "alpha"
            )
            #expect(
                Self.containers(again)["agent"]?["env"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == [
                    "A", "B",
                ]
            )
        }
    }

    @Test("a conflict names the item's field; equal values are shared; force takes only that field")
    func conflictsPerItem() async throws {
        try await withServerAndClient { _, client in
            let daemonSets = client.resource(Self.daemonSets, namespace: "default")
            _ = try await daemonSets.apply(
                Self.daemonSet([Self.container("agent", image: "agent:1")]),
                fieldManager: "alpha"
            )
            // A different container of the same list is no conflict.
            _ = try await daemonSets.apply(
                Self.daemonSet([Self.container("sidecar", image: "sidecar:1")]),
                fieldManager: "beta"
            )
            let conflict = await #expect(throws: KubeError.self) {
                try await daemonSets.apply(
                    Self.daemonSet([
                        Self.container("sidecar", image: "sidecar:1"), Self.container("agent", image: "agent:9"),
                    ]),
                    fieldManager: "beta"
                )
            }
            #expect(conflict?.code == .conflict)
            #expect(conflict?.causes.map(\.field) == [".spec.template.spec.containers[name=\"agent\"].image"])
            #expect(conflict?.causes.first?.message == "conflict with \"alpha\"")
            #expect(
                conflict?.message.contains(
                    "Apply failed with 1 conflict: conflict with \"alpha\": .spec.template.spec.containers[name=\"agent\"].image"
                ) == true
            )

            // The same value is shared ownership, not a conflict.
            let shared = try await daemonSets.apply(
                Self.daemonSet([
                    Self.container("sidecar", image: "sidecar:1"), Self.container("agent", image: "agent:1"),
                ]),
                fieldManager: "beta"
            )
            #expect(Self.containers(shared).count == 2)

            // Forcing moves the image to beta; alpha keeps the item and its name.
            let forced = try await daemonSets.apply(
                Self.daemonSet([
                    Self.container("sidecar", image: "sidecar:1"), Self.container("agent", image: "agent:9"),
                ]),
                fieldManager: "beta",
                force: true
            )
            #expect(Self.containers(forced)["agent"]?["image"] == "agent:9")
            let alpha = try #require(Self.fields(forced, "alpha"))
            let agent = Self.containersPath + ["k:{\"name\":\"agent\"}"]
            #expect(alpha[path: agent + ["."]] != nil)
            #expect(alpha[path: agent + ["f:name"]] != nil)
            #expect(alpha[path: agent + ["f:image"]] == nil)

            // Tolerations are atomic: a different list from another manager conflicts as a whole.
            _ = try await daemonSets.apply(
                Self.daemonSet(
                    [Self.container("agent", image: "agent:1")],
                    tolerations: [["operator": "Exists"]]
                ),
                fieldManager: "gamma",
                force: true
            )
            let atomic = await #expect(throws: KubeError.self) {
                try await daemonSets.apply(
                    Self.daemonSet(
                        [Self.container("sidecar", image: "sidecar:1")],
                        tolerations: [["key": "gpu", "operator": "Exists"]]
                    ),
                    fieldManager: "beta"
                )
            }
            #expect(atomic?.causes.map(\.field) == [".spec.template.spec.tolerations"])
        }
    }

    @Test("an item a manager stops applying is removed unless another manager owns it")
    func removal() async throws {
        try await withServerAndClient { _, client in
            let daemonSets = client.resource(Self.daemonSets, namespace: "default")
            _ = try await daemonSets.apply(
                Self.daemonSet([Self.container("agent", image: "agent:1"), Self.container("exporter", image: "e:1")]),
                fieldManager: "alpha"
            )
            _ = try await daemonSets.apply(
                Self.daemonSet([Self.container("sidecar", image: "sidecar:1")]),
                fieldManager: "beta"
            )
            // alpha drops exporter: it goes, the rest stays.
            let dropped = try await daemonSets.apply(
                Self.daemonSet([Self.container("agent", image: "agent:1")]),
                fieldManager: "alpha"
            )
            #expect(Set(Self.containers(dropped).keys) == ["agent", "sidecar"])
            #expect(Self.fields(dropped, "alpha")?[path: Self.containersPath + ["k:{\"name\":\"exporter\"}"]] == nil)

            // beta co-owns agent's image; alpha dropping agent keeps the item with the fields beta owns.
            _ = try await daemonSets.apply(
                Self.daemonSet([
                    Self.container("sidecar", image: "sidecar:1"), Self.container("agent", image: "agent:1"),
                ]),
                fieldManager: "beta"
            )
            let kept = try await daemonSets.apply(
                Self.daemonSet([Self.container("collector", image: "c:1")]),
                fieldManager: "alpha"
            )
            #expect(Set(Self.containers(kept).keys) == ["agent", "sidecar", "collector"])
            #expect(Self.containers(kept)["agent"]?["image"] == "agent:1")

            // Once beta stops applying agent too, it is gone.
            let gone = try await daemonSets.apply(
                Self.daemonSet([Self.container("sidecar", image: "sidecar:1")]),
                fieldManager: "beta"
            )
            #expect(Set(Self.containers(gone).keys) == ["sidecar", "collector"])

            // A non-apply write takes only the field it changes, not the item.
            let index = try #require(
                gone.spec?[path: ["template", "spec", "containers"]]?.arrayValue?.firstIndex {
                    $0["name"] == "collector"
                }
            )
            let edited = try await daemonSets.patch(
                "agent",
                .json([
                    [
                        "op": "replace", "path": .string("/spec/template/spec/containers/\(index)/image"),
                        "value": "c:2",
                    ]
                ]),
                fieldManager: "editor"
            )
            let collector = Self.containersPath + ["k:{\"name\":\"collector\"}"]
            #expect(Self.fields(edited, "alpha")?[path: collector + ["."]] != nil)
            #expect(Self.fields(edited, "alpha")?[path: collector + ["f:image"]] == nil)
            #expect(Self.fields(edited, "editor", operation: "Update")?[path: collector + ["f:image"]] != nil)
            #expect(Self.fields(edited, "editor", operation: "Update")?[path: collector + ["."]] == nil)
        }
    }

    @Test("finalizers are a set: each manager owns its values; a dropped value goes")
    func finalizerSet() async throws {
        try await withServerAndClient { _, client in
            let daemonSets = client.resource(Self.daemonSets, namespace: "default")
            var alphaIntent = Self.daemonSet([Self.container("agent", image: "agent:1")])
            alphaIntent.metadata.finalizers = ["example.com/alpha"]
            _ = try await daemonSets.apply(alphaIntent, fieldManager: "alpha")
            var betaIntent = Self.daemonSet([Self.container("sidecar", image: "sidecar:1")])
            betaIntent.metadata.finalizers = ["example.com/beta"]
            let both = try await daemonSets.apply(betaIntent, fieldManager: "beta")
            #expect(both.metadata.finalizers == ["example.com/alpha", "example.com/beta"])
            #expect(
                Self.fields(both, "beta")?[path: ["f:metadata", "f:finalizers", "v:\"example.com/beta\""]]
                    == .object([:])
            )
            #expect(Self.fields(both, "beta")?[path: ["f:metadata", "f:finalizers", "v:\"example.com/alpha\""]] == nil)

            alphaIntent.metadata.finalizers = nil
            let dropped = try await daemonSets.apply(alphaIntent, fieldManager: "alpha")
            #expect(dropped.metadata.finalizers == ["example.com/beta"])
            #expect(Self.containers(dropped).count == 2)
        }
    }

    @Test("ownerReferences merge by uid and status conditions by type")
    func ownerReferencesAndConditions() async throws {
        try await withServerAndClient { _, client in
            let daemonSets = client.resource(Self.daemonSets, namespace: "default")
            // Owners that exist, so that garbage collection leaves the DaemonSet alone.
            let configMaps = client.resource(
                ResourceType(group: "", version: "v1", kind: "ConfigMap", plural: "configmaps", namespaced: true),
                namespace: "default"
            )
            var uids: [String] = []
            for name in ["owner-1", "owner-2"] {
                let created = try await configMaps.create(
                    DynamicObject(configMaps.type, name: name, namespace: "default")
                )
                uids.append(try #require(created.metadata.uid))
            }
            func owner(_ index: Int) -> JSONValue {
                [
                    "apiVersion": "v1", "kind": "ConfigMap", "name": .string("owner-\(index + 1)"),
                    "uid": .string(uids[index]),
                ]
            }
            var alphaIntent = Self.daemonSet([Self.container("agent", image: "agent:1")])
            alphaIntent.object["metadata"]?.setValue(.array([owner(0)]), at: ["ownerReferences"])
            _ = try await daemonSets.apply(alphaIntent, fieldManager: "alpha")
            var betaIntent = Self.daemonSet([Self.container("sidecar", image: "sidecar:1")])
            betaIntent.object["metadata"]?.setValue(.array([owner(1)]), at: ["ownerReferences"])
            let both = try await daemonSets.apply(betaIntent, fieldManager: "beta")
            #expect(both.metadata.ownerReferences?.map(\.uid) == uids)
            let betaOwner = "k:{\"uid\":\"\(uids[1])\"}"
            #expect(Self.fields(both, "beta")?[path: ["f:metadata", "f:ownerReferences", betaOwner, "f:name"]] != nil)

            func condition(_ type: String) -> DynamicObject {
                var object = DynamicObject(Self.daemonSets, name: "agent", namespace: "default")
                object.status = ["conditions": [["type": .string(type), "status": "True"]]]
                return object
            }
            _ = try await daemonSets.applyStatus(condition("Ready"), fieldManager: "ready-controller")
            let status = try await daemonSets.applyStatus(condition("Progressing"), fieldManager: "rollout-controller")
            let types = status.status?["conditions"]?.arrayValue?.compactMap { $0["type"]?.stringValue }
            #expect(types == ["Ready", "Progressing"])
        }
    }

    static let widgets = ResourceType(
        group: "example.com",
        version: "v1",
        kind: "Widget",
        plural: "widgets",
        namespaced: true
    )

    static var widgetCRD: CustomResourceDefinition {
        var crd = CustomResourceDefinition(name: "widgets.example.com")
        crd.spec.group = "example.com"
        crd.spec.scope = "Namespaced"
        var names = CustomResourceDefinitionNames()
        names.plural = "widgets"
        names.singular = "widget"
        names.kind = "Widget"
        crd.spec.names = names
        var version = CustomResourceDefinitionVersion()
        version.name = "v1"
        version.served = true
        version.storage = true
        var schema = CustomResourceValidation()
        schema.openAPIV3Schema = [
            "type": "object",
            "properties": [
                "spec": [
                    "type": "object",
                    "properties": [
                        "backends": [
                            "type": "array",
                            "x-kubernetes-list-type": "map",
                            "x-kubernetes-list-map-keys": ["host", "port"],
                            "items": [
                                "type": "object",
                                "required": ["host", "port"],
                                "properties": [
                                    "host": ["type": "string"],
                                    "port": ["type": "integer"],
                                    "weight": ["type": "integer"],
                                ],
                            ],
                        ],
                        "labels": [
                            "type": "array", "x-kubernetes-list-type": "set", "items": ["type": "string"],
                        ],
                        "args": ["type": "array", "items": ["type": "string"]],
                    ],
                ]
            ],
        ]
        version.schema = schema
        crd.spec.versions = [version]
        return crd
    }

    static func widget(_ spec: JSONValue) -> DynamicObject {
        var object = DynamicObject(widgets, name: "w1", namespace: "default")
        object.spec = spec
        return object
    }

    @Test("CRD lists follow x-kubernetes-list-type: map by the declared keys, set, and atomic otherwise")
    func crdListTypes() async throws {
        try await withServerAndClient { _, client in
            _ = try await client.resource(CustomResourceDefinition.self).create(Self.widgetCRD)
            let widgets = client.resource(Self.widgets, namespace: "default")
            _ = try await widgets.apply(
                Self.widget([
                    "backends": [["host": "a", "port": 80, "weight": 1], ["host": "a", "port": 81, "weight": 1]],
                    "labels": ["x"], "args": ["--one"],
                ]),
                fieldManager: "alpha"
            )
            let both = try await widgets.apply(
                Self.widget(["backends": [["host": "b", "port": 80, "weight": 2]], "labels": ["y"]]),
                fieldManager: "beta"
            )
            let backends = both.spec?["backends"]?.arrayValue?.map {
                "\($0["host"]?.stringValue ?? ""):\($0["port"]?.intValue ?? 0)"
            }
            #expect(Set(backends ?? []) == ["a:80", "a:81", "b:80"])
            #expect(both.spec?["labels"] == ["x", "y"])
            #expect(
                Self.fields(both, "beta")?[
                    path: ["f:spec", "f:backends", "k:{\"host\":\"b\",\"port\":80}", "f:weight"]
                ] != nil
            )
            #expect(Self.fields(both, "beta")?[path: ["f:spec", "f:labels", "v:\"y\""]] != nil)

            // Same item, different weight: a conflict naming the item by both keys.
            let conflict = await #expect(throws: KubeError.self) {
                try await widgets.apply(
                    Self.widget(["backends": [["host": "a", "port": 80, "weight": 5]], "labels": ["y"]]),
                    fieldManager: "beta"
                )
            }
            #expect(conflict?.causes.map(\.field) == [".spec.backends[host=\"a\",port=80].weight"])

            // An atomic list with another value conflicts as a whole.
            let atomic = await #expect(throws: KubeError.self) {
                try await widgets.apply(
                    Self.widget(["args": ["--two"]]),
                    fieldManager: "beta"
                )
            }
            #expect(atomic?.causes.map(\.field) == [".spec.args"])

            // alpha drops one backend and its label: they go, beta's stay.
            let dropped = try await widgets.apply(
                Self.widget([
                    "backends": [["host": "a", "port": 80, "weight": 1]], "args": ["--one"],
                ]),
                fieldManager: "alpha"
            )
            let left = dropped.spec?["backends"]?.arrayValue?.map {
                "\($0["host"]?.stringValue ?? ""):\($0["port"]?.intValue ?? 0)"
            }
            #expect(Set(left ?? []) == ["a:80", "b:80"])
            #expect(dropped.spec?["labels"] == ["y"])
        }
    }
}
