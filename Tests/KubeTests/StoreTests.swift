// StoreTests.swift: the watcher cache in both representations: relists, updates, deletes, indexes, transforms.

import KubeModel
import KubeRuntime
import Testing

@Suite("Store")
struct StoreTests {
    static func gizmo(
        _ name: String,
        namespace: String = "default",
        color: String,
        managed: Bool = true
    )
        -> DynamicObject
    {
        var object = Gizmo.object(name, namespace: namespace, color: color, labels: ["color": color])
        object.metadata.uid = "uid-\(name)"
        if managed {
            object.metadata.managedFields = [
                ManagedFieldsEntry(object: [
                    "manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1",
                    "fieldsV1": ["f:spec": ["f:color": [:]]],
                ])
            ]
        }
        return object
    }

    static func makeStore(_ representation: Store<DynamicObject>.Representation) -> Store<DynamicObject> {
        Store(
            indexers: ["color": { [$0.spec?["color"]?.stringValue ?? ""] }],
            transform: Store.stripManagedFields,
            representation: representation
        )
    }

    @Test(
        "relist, update, delete and indexes behave the same as trees and as compact JSON",
        arguments: [Store<DynamicObject>.Representation.tree, .compactJSON]
    )
    func lifecycle(representation: Store<DynamicObject>.Representation) {
        let store = Self.makeStore(representation)
        #expect(!store.hasSynced)
        store.apply(.initStarted)
        store.apply(.initApply(Self.gizmo("b", color: "red")))
        store.apply(.initApply(Self.gizmo("a", color: "blue")))
        // Not visible until the relist is complete.
        #expect(store.count == 0)
        store.apply(.initDone)
        #expect(store.hasSynced)
        #expect(store.keys.map(\.name) == ["a", "b"])
        #expect(store.byIndex("color", "red").map { $0.metadata.name } == ["b"])

        // Read back equal to what was stored, minus managedFields.
        let stored = try? #require(store.get(namespace: "default", name: "b"))
        var expected = Self.gizmo("b", color: "red")
        expected.metadata.managedFields = nil
        #expect(stored == expected)

        // An update moves the object between index values.
        store.apply(.apply(Self.gizmo("b", color: "blue")))
        #expect(store.byIndex("color", "red").isEmpty)
        #expect(store.byIndex("color", "blue").map { $0.metadata.name } == ["a", "b"])
        #expect(store.map { $0.metadata.name ?? "" } == ["a", "b"])
        #expect(store.all.map { $0.spec?["color"]?.stringValue } == ["blue", "blue"])

        store.apply(.delete(Self.gizmo("a", color: "blue")))
        #expect(store.byIndex("color", "blue").map { $0.metadata.name } == ["b"])
        #expect(store.get(namespace: "default", name: "a") == nil)

        // A relist replaces everything, indexes included.
        store.apply(.initStarted)
        store.apply(.initApply(Self.gizmo("c", namespace: "other", color: "blue")))
        // The same key again within one relist: the later object wins, in the indexes too.
        store.apply(.initApply(Self.gizmo("c", namespace: "other", color: "red")))
        store.apply(.initDone)
        #expect(store.keys == [ObjectKey(namespace: "other", name: "c")])
        #expect(store.byIndex("color", "blue").isEmpty)
        #expect(store.list(namespace: "other", selector: LabelSelector(matchLabels: ["color": "red"])).count == 1)
        #expect(store.get(namespace: "other", name: "c")?.metadata.managedFields == nil)
    }
}
