// ServerSemanticsTests.swift: KubeClient against KubeTestServer: verbs, typed errors, generation, status
// subresource, optimistic concurrency, finalizers, garbage collection, selectors, pagination, SSA, request log.

import Foundation
import HearthTestSupport
import KubeClient
import KubeModel
import KubeTestServer
import Testing

@Suite("API semantics through KubeClient", .timeLimit(.minutes(1)))
struct ServerSemanticsTests {
    @Test("create, get, update with resourceVersion, 409 on a stale one, typed errors")
    func optimisticConcurrency() async throws {
        try await withServerAndClient { server, client in
            try await Gizmo.install(client)
            let gizmos = client.resource(Gizmo.type, namespace: "default")
            let created = try await gizmos.create(Gizmo.object("g1", size: 2))
            #expect(created.metadata.generation == 1)
            #expect(created.metadata.uid?.isEmpty == false)
            let error = await #expect(throws: KubeError.self) { try await gizmos.create(Gizmo.object("g1")) }
            #expect(error?.code == .alreadyExists)
            var copy = created
            copy.spec?.setValue(3, at: ["size"])
            let updated = try await gizmos.update(copy)
            #expect(updated.metadata.generation == 2)
            let stale = await #expect(throws: KubeError.self) { try await gizmos.update(copy) }
            #expect(stale?.code == .conflict)
            #expect(stale?.message.contains("the object has been modified") == true)
            let missing = await #expect(throws: KubeError.self) { try await gizmos.get("nope") }
            #expect(missing?.code == .notFound)
            #expect(missing?.status?.details?.name == "nope")
            #expect(try await gizmos.getIfExists("nope") == nil)
            _ = server
        }
    }

    @Test("422 Invalid carries a cause per field")
    func invalidCauses() async throws {
        try await withServerAndClient { _, client in
            try await Gizmo.install(client)
            let gizmos = client.resource(Gizmo.type, namespace: "default")
            var bad = Gizmo.object("bad", color: "green", size: -1)
            bad.spec?.setValue("UPPER", at: ["name"])
            let error = await #expect(throws: KubeError.self) { try await gizmos.create(bad) }
            #expect(error?.code == .invalid)
            let fields = Set(error?.causes.compactMap(\.field) ?? [])
            #expect(fields == ["spec.color", "spec.size", "spec.name"])
            #expect(error?.message.hasPrefix(#"Gizmo.example.com "bad" is invalid: ["#) == true)
            // Defaults fill missing fields.
            var minimal = DynamicObject(Gizmo.type, name: "minimal", namespace: "default")
            minimal.spec = ["color": "blue"]
            #expect(try await gizmos.create(minimal).spec?["size"] == 1)
        }
    }

    @Test("generation moves on spec changes only; /status writes change only status")
    func generationAndStatus() async throws {
        try await withServerAndClient { server, client in
            try await Gizmo.install(client)
            let gizmos = client.resource(Gizmo.type, namespace: "default")
            var object = Gizmo.object("g1")
            object.status = ["phase": "ignored"]
            let created = try await gizmos.create(object)
            #expect(created.status == nil)
            let labeled = try await gizmos.patch("g1", .merge(["metadata": ["labels": ["a": "b"]]]))
            #expect(labeled.metadata.generation == 1)
            let withStatus = try await gizmos.patchStatus(
                "g1",
                .merge(["status": ["phase": "Ready"], "spec": ["size": 7], "metadata": ["labels": ["x": "y"]]])
            )
            #expect(withStatus.status?["phase"] == "Ready")
            #expect(withStatus.spec?["size"] == 1)
            #expect(withStatus.metadata.labels == ["a": "b"])
            #expect(withStatus.metadata.generation == 1)
            let mainWrite = try await gizmos.patch("g1", .merge(["status": ["phase": "Hacked"], "spec": ["size": 4]]))
            #expect(mainWrite.status?["phase"] == "Ready")
            #expect(mainWrite.metadata.generation == 2)
            // A no-op write keeps the resourceVersion and sends no event.
            let before = server.resourceVersion
            let noop = try await gizmos.patch("g1", .merge(["spec": ["size": 4]]))
            #expect(noop.metadata.resourceVersion == mainWrite.metadata.resourceVersion)
            #expect(server.resourceVersion == before)
            // Unknown fields stay in the typed view across read-modify-write.
            var fetched = try await gizmos.get("g1")
            fetched.metadata.annotations = ["note": "kept"]
            let written = try await gizmos.update(fetched)
            #expect(written.status?["phase"] == "Ready")
            #expect(written.object["spec"] == fetched.object["spec"])
        }
    }

    @Test("finalizers hold deletion; no new finalizers once deleting; removal completes it")
    func finalizers() async throws {
        try await withServerAndClient { _, client in
            try await Gizmo.install(client)
            let gizmos = client.resource(Gizmo.type, namespace: "default")
            var object = Gizmo.object("g1")
            object.metadata.finalizers = ["example.com/a"]
            _ = try await gizmos.create(object)
            let pending = try #require(try await gizmos.delete("g1"))
            #expect(pending.metadata.deletionTimestamp != nil)
            #expect(pending.metadata.generation == 2)
            let refused = await #expect(throws: KubeError.self) {
                try await gizmos.patch("g1", .merge(["metadata": ["finalizers": ["example.com/a", "example.com/b"]]]))
            }
            #expect(refused?.code == .invalid)
            #expect(refused?.causes.first?.field == "metadata.finalizers")
            _ = try await gizmos.patch(
                "g1",
                .json([
                    ["op": "test", "path": "/metadata/finalizers/0", "value": "example.com/a"],
                    ["op": "remove", "path": "/metadata/finalizers/0"],
                ])
            )
            #expect(try await gizmos.getIfExists("g1") == nil)
            // A failed JSON patch test is a 422.
            _ = try await gizmos.create(Gizmo.object("g2"))
            let failedTest = await #expect(throws: KubeError.self) {
                try await gizmos.patch("g2", .json([["op": "test", "path": "/spec/color", "value": "blue"]]))
            }
            #expect(failedTest?.code == .invalid)
        }
    }

    @Test("ownerReference garbage collection: background, orphan and foreground")
    func garbageCollection() async throws {
        try await withServerAndClient { _, client in
            try await Gizmo.install(client)
            let gizmos = client.resource(Gizmo.type, namespace: "default")
            let configMaps = client.resource(ConfigMap.self, namespace: "default")
            func owned(_ name: String, by owner: DynamicObject) async throws {
                var configMap = ConfigMap(name: name, namespace: "default")
                configMap.metadata.ownerReferences = [
                    OwnerReference(
                        apiVersion: "example.com/v1",
                        kind: "Gizmo",
                        name: owner.metadata.name!,
                        uid: owner.metadata.uid!,
                        controller: true,
                        blockOwnerDeletion: true
                    )
                ]
                _ = try await configMaps.create(configMap)
            }
            let background = try await gizmos.create(Gizmo.object("bg"))
            try await owned("bg-child", by: background)
            try await gizmos.delete("bg")
            #expect(try await configMaps.getIfExists("bg-child") == nil)

            let orphaning = try await gizmos.create(Gizmo.object("or"))
            try await owned("or-child", by: orphaning)
            try await gizmos.delete("or", propagationPolicy: .orphan)
            #expect(try await gizmos.getIfExists("or") == nil)
            let orphan = try #require(try await configMaps.getIfExists("or-child"))
            #expect(orphan.metadata.ownerReferences == nil)

            let foreground = try await gizmos.create(Gizmo.object("fg"))
            var held = ConfigMap(name: "fg-child", namespace: "default")
            held.metadata.finalizers = ["example.com/hold"]
            held.metadata.ownerReferences = [
                OwnerReference(
                    apiVersion: "example.com/v1",
                    kind: "Gizmo",
                    name: "fg",
                    uid: foreground.metadata.uid!,
                    controller: true,
                    blockOwnerDeletion: true
                )
            ]
            _ = try await configMaps.create(held)
            try await gizmos.delete("fg", propagationPolicy: .foreground)
            let waiting = try #require(try await gizmos.getIfExists("fg"))
            #expect(waiting.metadata.finalizers == ["foregroundDeletion"])
            _ = try await configMaps.patch("fg-child", .merge(["metadata": ["finalizers": nil]]))
            #expect(try await configMaps.getIfExists("fg-child") == nil)
            #expect(try await gizmos.getIfExists("fg") == nil)
            // A dependent written after its owner is gone is collected too.
            try await owned("late-child", by: foreground)
            #expect(try await configMaps.getIfExists("late-child") == nil)
        }
    }

    @Test("label and field selectors; pagination from one snapshot; 410 for expired tokens")
    func selectorsAndPagination() async throws {
        try await withServerAndClient { server, client in
            try await Gizmo.install(client)
            let gizmos = client.resource(Gizmo.type, namespace: "default")
            for index in 0..<7 {
                _ = try await gizmos.create(
                    Gizmo.object("g\(index)", labels: ["tier": index % 2 == 0 ? "even" : "odd", "n": "\(index)"])
                )
            }
            #expect(try await gizmos.list(ListOptions(labelSelector: "tier=even")).items.count == 4)
            #expect(try await gizmos.list(ListOptions(labelSelector: "tier!=even,n in (1,3,9)")).items.count == 2)
            #expect(try await gizmos.list(ListOptions(labelSelector: "!n")).items.isEmpty)
            #expect(
                try await gizmos.list(ListOptions(fieldSelector: "metadata.name=g3")).items.map(\.metadata.name) == [
                    "g3"
                ]
            )
            let badField = await #expect(throws: KubeError.self) {
                try await gizmos.list(ListOptions(fieldSelector: "spec.color=red"))
            }
            #expect(badField?.code == .badRequest)

            let first = try await gizmos.list(ListOptions(limit: 3))
            #expect(first.items.map { $0.metadata.name! } == ["g0", "g1", "g2"])
            #expect(first.metadata.remainingItemCount == 4)
            _ = try await gizmos.create(Gizmo.object("g10"))
            var options = ListOptions(limit: 3)
            options.continueToken = first.metadata.continue
            let second = try await gizmos.list(options)
            #expect(second.items.map { $0.metadata.name! } == ["g3", "g4", "g5"])
            let all = try await gizmos.listAll(pageSize: 2)
            #expect(all.items.count == 8)
            server.compactHistory()
            let expired = await #expect(throws: KubeError.self) { try await gizmos.list(options) }
            #expect(expired?.code == .gone)
        }
    }

    @Test("server-side apply: field managers, conflicts with causes, force, removal of dropped fields")
    func serverSideApply() async throws {
        try await withServerAndClient { _, client in
            try await Gizmo.install(client)
            let gizmos = client.resource(Gizmo.type, namespace: "default")
            var intent = DynamicObject(Gizmo.type, name: "s1", namespace: "default")
            intent.spec = ["color": "red", "size": 2, "tags": ["a": "1"]]
            let created = try await gizmos.apply(intent, fieldManager: "alpha")
            #expect(created.metadata.managedFields?.map(\.manager) == ["alpha"])

            var other = DynamicObject(Gizmo.type, name: "s1", namespace: "default")
            other.spec = ["color": "red", "size": 5]
            let conflict = await #expect(throws: KubeError.self) { try await gizmos.apply(other, fieldManager: "beta") }
            #expect(conflict?.code == .conflict)
            #expect(conflict?.causes.map(\.field) == [".spec.size"])
            #expect(conflict?.causes.first?.reason == "FieldManagerConflict")
            let forced = try await gizmos.apply(other, fieldManager: "beta", force: true)
            #expect(forced.spec?["size"] == 5)

            // alpha stops applying tags: they go; color is shared with beta so it stays.
            var smaller = DynamicObject(Gizmo.type, name: "s1", namespace: "default")
            smaller.spec = ["size": 5]
            let afterDrop = try await gizmos.apply(smaller, fieldManager: "alpha", force: true)
            #expect(afterDrop.spec?["tags"] == nil)
            #expect(afterDrop.spec?["color"] == "red")

            // Status through apply on /status.
            var status = DynamicObject(Gizmo.type, name: "s1", namespace: "default")
            status.status = ["conditions": [["type": "Ready", "status": "True", "reason": "Done", "message": ""]]]
            let withStatus = try await gizmos.applyStatus(status, fieldManager: "controller")
            #expect(withStatus.status?["conditions"]?.arrayValue?.count == 1)
            #expect(
                withStatus.metadata.managedFields?.contains { $0.manager == "controller" && $0.subresource == "status" }
                    == true
            )
        }
    }

    @Test("watch from a compacted resourceVersion gets ERROR 410; the request log counts writes")
    func watchGoneAndRequestLog() async throws {
        try await withServerAndClient { server, client in
            try await Gizmo.install(client)
            let gizmos = client.resource(Gizmo.type, namespace: "default")
            let created = try await gizmos.create(Gizmo.object("g1"))
            _ = try await gizmos.patch("g1", .merge(["spec": ["size": 2]]))
            server.compactHistory()
            var events = try await gizmos.watch(WatchOptions(resourceVersion: created.metadata.resourceVersion))
                .makeAsyncIterator()
            let first = try #require(try await events.next())
            #expect(first.type == .error)
            #expect(first.status?.code == 410)
            #expect(try await events.next() == nil)

            server.clearRequestLog()
            _ = try await gizmos.create(Gizmo.object("g2"))
            _ = try await gizmos.patch("g2", .merge(["spec": ["size": 3]]))
            _ = try await gizmos.get("g2")
            try await gizmos.delete("g2")
            let writes = server.requestLog.filter(\.isWrite)
            #expect(writes.map(\.verb) == ["create", "patch", "delete"])
        }
    }

    @Test("finalizer helpers: add and remove guarded by JSON patch tests")
    func finalizerHelpers() async throws {
        try await withServerAndClient { _, client in
            try await Gizmo.install(client)
            let gizmos = client.resource(Gizmo.type, namespace: "default")
            let created = try await gizmos.create(Gizmo.object("g1"))
            let held = try await gizmos.addFinalizer("hearth.dev/cleanup", to: created)
            #expect(held.metadata.finalizers == ["hearth.dev/cleanup"])
            let twice = try await gizmos.addFinalizer("example.com/other", to: held)
            #expect(twice.metadata.finalizers == ["hearth.dev/cleanup", "example.com/other"])
            // A stale read fails the test op instead of clobbering the list.
            let stale = await #expect(throws: KubeError.self) { try await gizmos.addFinalizer("x/y", to: held) }
            #expect(stale?.code == .invalid)
            let deleting = try #require(try await gizmos.delete("g1"))
            let remaining = try await gizmos.removeFinalizer("hearth.dev/cleanup", from: deleting)
            #expect(remaining?.metadata.finalizers == ["example.com/other"])
            let gone = try await gizmos.removeFinalizer("example.com/other", from: try #require(remaining))
            #expect(gone == nil)
            #expect(try await gizmos.getIfExists("g1") == nil)
        }
    }

    @Test("retryOnConflict re-reads and retries stale updates")
    func retryConflicts() async throws {
        try await withServerAndClient { _, client in
            let configMaps = client.resource(ConfigMap.self, namespace: "default")
            _ = try await configMaps.create(ConfigMap(name: "counter", namespace: "default"))
            let attempts = Locked(0)
            let result = try await retryOnConflict {
                var object = try await configMaps.get("counter")
                if attempts.withLock({
                    $0 += 1
                    return $0
                }) == 1 {
                    // Someone else writes between our read and our update.
                    _ = try await configMaps.patch("counter", .merge(["data": ["other": "1"]]))
                }
                object.data = (object.data ?? [:]).merging(["mine": "1"]) { $1 }
                return try await configMaps.update(object)
            }
            #expect(attempts.value == 2)
            #expect(result.data == ["other": "1", "mine": "1"])
        }
    }

    @Test("every call has a timeout: a delayed server gives a typed timeout error")
    func callTimeout() async throws {
        // Generous against a loaded 2-core machine, and far apart: a 1 s timeout against a 5 s delay.
        let oneSecond: (inout ClientConfiguration) -> Void = { $0.timeout = .seconds(1) }
        try await withServerAndClient(clientSettings: oneSecond) { server, client in
            let namespaces = client.resource(Namespace.self)
            let before = try await namespaces.get("default")
            #expect(before.metadata.name == "default")
            server.setDelay(.seconds(5))
            let start = ContinuousClock.now
            let error = await #expect(throws: KubeError.self) { try await namespaces.get("default") }
            #expect(error?.code == .timeout)
            #expect(ContinuousClock.now - start < .seconds(5))
            server.setDelay(nil)
            // The delayed request may still hold its connection for a moment: the client recovers within a deadline.
            let deadline = ContinuousClock.now + .seconds(15)
            var after: Namespace?
            while after == nil, ContinuousClock.now < deadline {
                after = try? await namespaces.get("default")
            }
            #expect(after?.metadata.name == "default")
        }
    }
}
