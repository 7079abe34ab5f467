// ServerState+Deletion.swift: deletion and garbage collection: preconditions, finalizers (orphan,
// foregroundDeletion, the namespace's), propagation policies, dependents found by owner uid.

import Foundation
import KubeModel

extension ServerState {
    // MARK: Delete

    enum DeleteOutcome {
        case removed(JSONObject)
        case pending(JSONObject)
    }

    mutating func delete(
        _ info: ResourceInfo,
        namespace: String?,
        name: String,
        policy: DeletionPropagation?,
        preconditions: (uid: String?, rv: String?),
        dryRun: Bool = false
    ) throws(APIError) -> DeleteOutcome {
        let key = self.key(info, namespace: namespace, name: name)
        guard let old = self.current(info, key) else { throw .notFound(info, name) }
        let oldMeta = ObjectMeta(object: old["metadata"]?.objectValue ?? [:])
        if let uid = preconditions.uid, uid != oldMeta.uid {
            throw .conflict(
                info,
                name,
                "Precondition failed: UID in precondition: \(uid), UID in object meta: \(oldMeta.uid ?? "")"
            )
        }
        if let rv = preconditions.rv, rv != oldMeta.resourceVersion {
            throw .conflict(
                info,
                name,
                "Precondition failed: ResourceVersion in precondition: \(rv), ResourceVersion in object meta: "
                    + "\(oldMeta.resourceVersion ?? "")"
            )
        }
        if oldMeta.deletionTimestamp != nil { return .pending(old) }
        var finalizers = oldMeta.finalizers ?? []
        if policy == .foreground, !finalizers.contains("foregroundDeletion") {
            finalizers.append("foregroundDeletion")
        }
        if policy == .orphan, !finalizers.contains("orphan") { finalizers.append("orphan") }
        if dryRun { return finalizers.isEmpty ? .removed(old) : .pending(old) }
        if finalizers.isEmpty {
            self.remove(info, key, old, bumpRV: true)
            var gone = old
            gone.setResourceVersion(self.rv)
            return .removed(gone)
        }
        var object = old
        var meta = oldMeta
        meta.finalizers = finalizers
        meta.deletionTimestamp = KubeTime.format(Date())
        meta.deletionGracePeriodSeconds = 0
        if info.hasGeneration { meta.generation = (meta.generation ?? 0) + 1 }
        object["metadata"] = meta.json
        object.setResourceVersion(self.nextRV())
        self.store(info, key, object)
        self.emit(.modified, info, object, old: old)
        if info.type.plural == "namespaces" {
            self.deleteNamespaceContents(name)
        }
        if finalizers.contains("orphan") { self.orphanDependents(of: meta.uid ?? "") }
        if finalizers.contains("foregroundDeletion") { self.deleteDependents(of: meta.uid ?? "", policy: .foreground) }
        self.releaseSystemFinalizers(info, key)
        return .pending(self.current(info, key) ?? object)
    }

    /// Removes the object for good: DELETED event, then cascades (CRD instances, namespace contents, dependents).
    mutating func remove(_ info: ResourceInfo, _ key: ObjectKey, _ object: JSONObject, bumpRV: Bool) {
        var object = object
        if bumpRV { object.setResourceVersion(self.nextRV()) }
        self.objects[info.storageKey]?.removeValue(forKey: key)
        let uid = object["metadata"]?["uid"]?.stringValue ?? ""
        self.uidIndex.removeValue(forKey: uid)
        self.emit(.deleted, info, object, old: object)
        if info.type.plural == "customresourcedefinitions" {
            self.unregister(CustomResourceDefinition(object: object))
        }
        if info.type.plural == "namespaces" { self.deleteNamespaceContents(key.name) }
        self.collectGarbage(removedUID: uid)
        for owner in ObjectMeta(object: object["metadata"]?.objectValue ?? [:]).ownerReferences ?? [] {
            if let location = self.uidIndex[owner.uid ?? ""], let ownerInfo = self.resources[location.0] {
                self.releaseSystemFinalizers(ownerInfo, location.1)
            }
        }
    }

    mutating func deleteNamespaceContents(_ namespace: String) {
        for (storageKey, objects) in self.objects {
            guard let info = self.resources[storageKey], info.type.namespaced else { continue }
            for key in objects.keys where key.namespace == namespace {
                _ = try? self.delete(info, namespace: namespace, name: key.name, policy: nil, preconditions: (nil, nil))
            }
        }
    }

    func dependents(of uid: String) -> [(ResourceInfo, ObjectKey, JSONObject)] {
        guard !uid.isEmpty else { return [] }
        var result: [(ResourceInfo, ObjectKey, JSONObject)] = []
        for (storageKey, objects) in self.objects {
            guard let info = self.resources[storageKey] else { continue }
            for (key, object) in objects {
                let owners = object["metadata"]?["ownerReferences"]?.arrayValue ?? []
                if owners.contains(where: { $0["uid"]?.stringValue == uid }) { result.append((info, key, object)) }
            }
        }
        return result
    }

    /// Background garbage collection after an owner is gone.
    mutating func collectGarbage(removedUID uid: String) {
        for (info, key, object) in self.dependents(of: uid) {
            let meta = ObjectMeta(object: object["metadata"]?.objectValue ?? [:])
            let owners = meta.ownerReferences ?? []
            let alive = owners.filter { owner in owner.uid != uid && self.uidIndex[owner.uid ?? ""] != nil }
            if alive.isEmpty {
                _ = try? self.delete(
                    info,
                    namespace: key.namespace,
                    name: key.name,
                    policy: .background,
                    preconditions: (nil, nil)
                )
            } else {
                self.removeOwnerReference(to: uid, from: object, info)
            }
        }
    }

    mutating func orphanDependents(of uid: String) {
        for (info, _, object) in self.dependents(of: uid) {
            self.removeOwnerReference(to: uid, from: object, info)
        }
    }

    /// Drops a dependent's owner reference to `uid`, as the garbage collector (kube-controller-manager) does.
    mutating func removeOwnerReference(to uid: String, from object: JSONObject, _ info: ResourceInfo) {
        var updated = object
        var meta = ObjectMeta(object: object["metadata"]?.objectValue ?? [:])
        meta.ownerReferences = (meta.ownerReferences ?? []).filter { $0.uid != uid }
        if meta.ownerReferences?.isEmpty ?? false { meta.ownerReferences = nil }
        updated["metadata"] = meta.json
        self.commitAsGarbageCollector(info, old: object, updated: updated)
    }

    /// Writes what the garbage collector changed, under its field manager (its failures are its own to retry).
    private mutating func commitAsGarbageCollector(_ info: ResourceInfo, old: JSONObject, updated: JSONObject) {
        _ = try? self.commitUpdate(
            info,
            old: old,
            candidate: updated,
            subresource: nil,
            context: .init(manager: "kube-controller-manager")
        )
    }

    mutating func deleteDependents(of uid: String, policy: DeletionPropagation) {
        for (info, key, _) in self.dependents(of: uid) {
            _ = try? self.delete(
                info,
                namespace: key.namespace,
                name: key.name,
                policy: policy,
                preconditions: (nil, nil)
            )
        }
    }

    /// Removes the `orphan` and `foregroundDeletion` finalizers once the garbage collector's work is done.
    mutating func releaseSystemFinalizers(_ info: ResourceInfo, _ key: ObjectKey) {
        guard let object = self.current(info, key) else { return }
        var meta = ObjectMeta(object: object["metadata"]?.objectValue ?? [:])
        guard meta.deletionTimestamp != nil, var finalizers = meta.finalizers else { return }
        let uid = meta.uid ?? ""
        let dependents = self.dependents(of: uid)
        if finalizers.contains("orphan") {
            guard dependents.isEmpty else { return }
            finalizers.removeAll { $0 == "orphan" }
        }
        if finalizers.contains("foregroundDeletion") {
            let blocking = dependents.contains { _, _, dependent in
                (dependent["metadata"]?["ownerReferences"]?.arrayValue ?? []).contains {
                    $0["uid"]?.stringValue == uid && $0["blockOwnerDeletion"]?.boolValue == true
                }
            }
            if blocking { return }
            finalizers.removeAll { $0 == "foregroundDeletion" }
        }
        if finalizers == meta.finalizers { return }
        var updated = object
        meta.finalizers = finalizers
        updated["metadata"] = meta.json
        self.commitAsGarbageCollector(info, old: object, updated: updated)
    }
}
