// ServerState.swift: the in-memory store with the API server's write semantics. Every operation is synchronous
// and runs under the server's lock, so one global resourceVersion orders every write.

import Foundation
import KubeModel

/// A served resource (built-in or from a CRD).
struct ResourceInfo: Sendable {
    var type: ResourceType
    var versions: [String]
    var singular: String
    var shortNames: [String] = []
    var categories: [String] = []
    var hasStatus: Bool = false
    var hasGeneration: Bool = false
    var schema: StructuralSchema? = nil
    var printerColumns: [CustomResourceColumnDefinition] = []
    var isCustom: Bool = false
    var createOnly: Bool = false

    var storageKey: String { "\(self.type.group)/\(self.type.plural)" }
    var listKind: String { "\(self.type.kind)List" }
    var verbs: [String] {
        self.createOnly
            ? ["create"] : ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
    }
}

/// One stored change.
struct StoredEvent: Sendable {
    var rv: Int64
    var storageKey: String
    var type: WatchEventType
    var object: JSONObject
    var old: JSONObject?
}

/// What a watch stream receives.
enum WatchSignal: Sendable {
    case event(StoredEvent)
    /// Periodic; carries the resourceVersion all earlier events are at or below (for bookmarks).
    case tick(Int64)
    /// Fault injection: close the stream abruptly.
    case drop
}

/// Options of one write.
struct WriteContext: Sendable {
    var manager: String
    var fieldValidation: String = "Warn"
    var dryRun: Bool = false
    var force: Bool = false
    var apiVersion: String = ""
}

struct ServerState {
    var rv: Int64 = 1
    var resources: [String: ResourceInfo] = [:]
    var objects: [String: [ObjectKey: JSONObject]] = [:]
    var uidIndex: [String: (String, ObjectKey)] = [:]
    var history: [StoredEvent] = []
    var historyStart = 0
    var compactedRV: Int64 = 1
    var maxHistory = 200_000
    var watchers: [UUID: AsyncStream<WatchSignal>.Continuation] = [:]
    var snapshots: [String: [JSONObject]] = [:]
    var snapshotOrder: [String] = []
    var discoveryGeneration = 1
    var warnings: [String] = []
    var expiredWatchers: Set<UUID> = []

    init() {
        for info in BuiltinResources.all { self.resources[info.storageKey] = info }
        for name in ["default", "kube-system", "kube-public"] {
            var namespace = Namespace(name: name)
            namespace.object["status"] = ["phase": "Active"]
            _ = try? self.create(
                self.resources["/namespaces"]!,
                namespace: nil,
                body: namespace.object,
                context: .init(manager: "kube-apiserver")
            )
        }
    }

    // MARK: Lookup

    func info(group: String, version: String, plural: String) -> ResourceInfo? {
        guard var info = self.resources["\(group)/\(plural)"], info.versions.contains(version) else { return nil }
        info.type.version = version
        return info
    }

    func current(_ info: ResourceInfo, _ key: ObjectKey) -> JSONObject? { self.objects[info.storageKey]?[key] }

    func key(_ info: ResourceInfo, namespace: String?, name: String) -> ObjectKey {
        ObjectKey(namespace: info.type.namespaced ? namespace : nil, name: name)
    }

    func get(_ info: ResourceInfo, namespace: String?, name: String) throws(APIError) -> JSONObject {
        guard let object = self.current(info, self.key(info, namespace: namespace, name: name)) else {
            throw .notFound(info, name)
        }
        return object
    }

    // MARK: List

    struct ListResult {
        var items: [JSONObject]
        var resourceVersion: String
        var continueToken: String?
        var remaining: Int?
    }

    func matches(
        _ object: JSONObject,
        _ info: ResourceInfo,
        namespace: String?,
        labels: Selector,
        fields: Selector
    )
        -> Bool
    {
        let meta = ObjectMeta(object: object["metadata"]?.objectValue ?? [:])
        if info.type.namespaced, let namespace, meta.namespace != namespace { return false }
        if !labels.matches(meta.labels ?? [:]) { return false }
        if fields.isEmpty { return true }
        var values: [String: String] = [:]
        for requirement in fields.requirements {
            let path = requirement.key.split(separator: ".").map(String.init)
            switch path[path.count - 1] {
            default:
                if let value = JSONValue.object(object)[path: path] {
                    values[requirement.key] = value.stringValue ?? value.description
                }
            }
        }
        return fields.matches(values)
    }

    func validateFieldSelector(_ fields: Selector, _ info: ResourceInfo) throws(APIError) {
        for requirement in fields.requirements {
            if requirement.operator != .equals && requirement.operator != .notEquals {
                throw .badRequest("invalid field selector: \(requirement)")
            }
            if info.isCustom, requirement.key != "metadata.name", requirement.key != "metadata.namespace" {
                throw .badRequest("field label not supported: \(requirement.key)")
            }
        }
    }

    mutating func list(
        _ info: ResourceInfo,
        namespace: String?,
        labels: Selector,
        fields: Selector,
        limit: Int?,
        continueToken: String?
    ) throws(APIError) -> ListResult {
        try self.validateFieldSelector(fields, info)
        var items: [JSONObject]
        var offset = 0
        if let continueToken, !continueToken.isEmpty {
            let parts = continueToken.split(separator: ":")
            guard parts.count == 3, let snapshot = self.snapshots[String(parts[0])], let start = Int(parts[1]) else {
                var error = APIError.gone(
                    "The provided continue parameter is too old to display a consistent list result. You can start a "
                        + "new list without the continue parameter, or use the continue token in this response to "
                        + "retrieve the remainder of the results. Continuing with the provided token results in an "
                        + "inconsistent list - objects that were created, modified, or deleted between the time the "
                        + "first chunk was returned and now may show up in the list."
                )
                error.status.object["metadata"] = ["continue": ""]
                throw error
            }
            items = snapshot
            offset = start
            let rv = String(parts[2])
            return self.page(items, offset: offset, limit: limit, rv: rv, snapshotID: String(parts[0]))
        }
        items = (self.objects[info.storageKey] ?? [:]).sorted { $0.key < $1.key }.map(\.value)
            .filter { self.matches($0, info, namespace: namespace, labels: labels, fields: fields) }
        return self.pageAndSnapshot(items, limit: limit)
    }

    private mutating func pageAndSnapshot(_ items: [JSONObject], limit: Int?) -> ListResult {
        let rv = String(self.rv)
        guard let limit, limit > 0, items.count > limit else {
            return ListResult(items: items, resourceVersion: rv, continueToken: nil, remaining: nil)
        }
        let id = UUID().uuidString
        self.snapshots[id] = items
        self.snapshotOrder.append(id)
        if self.snapshotOrder.count > 32 { self.snapshots.removeValue(forKey: self.snapshotOrder.removeFirst()) }
        return self.page(items, offset: 0, limit: limit, rv: rv, snapshotID: id)
    }

    private func page(_ items: [JSONObject], offset: Int, limit: Int?, rv: String, snapshotID: String) -> ListResult {
        let end = limit.map { min(items.count, offset + max($0, 1)) } ?? items.count
        let slice = Array(items[min(offset, items.count)..<end])
        let more = end < items.count
        return ListResult(
            items: slice,
            resourceVersion: rv,
            continueToken: more ? "\(snapshotID):\(end):\(rv)" : nil,
            remaining: more ? items.count - end : nil
        )
    }

    // MARK: Events

    mutating func nextRV() -> Int64 {
        self.rv += 1
        return self.rv
    }

    mutating func emit(_ type: WatchEventType, _ info: ResourceInfo, _ object: JSONObject, old: JSONObject?) {
        let event = StoredEvent(rv: self.rv, storageKey: info.storageKey, type: type, object: object, old: old)
        self.history.append(event)
        if self.history.count - self.historyStart > self.maxHistory {
            self.compact(to: self.history[self.historyStart + self.maxHistory / 2].rv)
        }
        for continuation in self.watchers.values { continuation.yield(.event(event)) }
    }

    /// Drops history at or below `rv`; watches from older versions then get 410 Gone.
    mutating func compact(to rv: Int64) {
        self.compactedRV = max(self.compactedRV, rv)
        while self.historyStart < self.history.count, self.history[self.historyStart].rv <= self.compactedRV {
            self.historyStart += 1
        }
        if self.historyStart > 4096 {
            self.history.removeFirst(self.historyStart)
            self.historyStart = 0
        }
        self.snapshots.removeAll()
        self.snapshotOrder.removeAll()
    }

    /// Registers a watch and returns the backlog after `rv`, or nil when `rv` is compacted away.
    mutating func subscribe(
        id: UUID,
        from rv: Int64?,
        continuation: AsyncStream<WatchSignal>.Continuation
    ) -> [StoredEvent]? {
        var backlog: [StoredEvent] = []
        if let rv {
            if rv < self.compactedRV { return nil }
            backlog = self.history[self.historyStart...].filter { $0.rv > rv }
        }
        self.watchers[id] = continuation
        return backlog
    }

    mutating func unsubscribe(id: UUID) {
        self.watchers.removeValue(forKey: id)
        self.expiredWatchers.remove(id)
    }

    // MARK: Create

    mutating func create(
        _ info: ResourceInfo,
        namespace: String?,
        body: JSONObject,
        context: WriteContext,
        managedFields: [ManagedFieldsEntry]? = nil
    ) throws(APIError) -> JSONObject {
        if info.createOnly { return body }
        var object = body
        object["apiVersion"] = .string(info.type.apiVersion)
        object["kind"] = .string(info.type.kind)
        var meta = ObjectMeta(object: object["metadata"]?.objectValue ?? [:])
        if meta.name == nil || meta.name == "" {
            guard let prefix = meta.generateName, !prefix.isEmpty else {
                throw .invalid(info, "", [.required("metadata.name", "name or generateName is required")])
            }
            meta.name = prefix + String(UUID().uuidString.lowercased().filter(\.isLetter).prefix(5))
        }
        let name = meta.name!
        if info.type.namespaced {
            let requested = namespace ?? meta.namespace ?? "default"
            if let bodyNamespace = meta.namespace, !bodyNamespace.isEmpty, bodyNamespace != requested {
                throw .badRequest(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            }
            meta.namespace = requested
            guard let ns = self.objects["/namespaces"]?[ObjectKey(namespace: nil, name: requested)] else {
                throw .namespaceNotFound(requested)
            }
            if ns["metadata"]?["deletionTimestamp"] != nil {
                throw .forbidden(
                    "\(info.type.qualifiedName) \"\(name)\" is forbidden: unable to create new content in namespace "
                        + "\(requested) because it is being terminated"
                )
            }
        } else {
            meta.namespace = nil
        }
        let key = self.key(info, namespace: meta.namespace, name: name)
        if self.current(info, key) != nil { throw .alreadyExists(info, name) }
        meta.uid = UUID().uuidString.lowercased()
        meta.creationTimestamp = KubeTime.format(Date())
        meta.resourceVersion = nil
        meta.deletionTimestamp = nil
        meta.generation = info.hasGeneration ? 1 : nil
        object["metadata"] = meta.json
        if info.hasStatus && info.type.plural != "customresourcedefinitions" { object.removeValue(forKey: "status") }
        object = try self.admit(info, name: name, object: object, old: nil, context: context)
        meta = ObjectMeta(object: object["metadata"]?.objectValue ?? [:])
        meta.managedFields =
            managedFields
            ?? Self.updateEntries(
                [],
                manager: context.manager,
                changed: FieldSet(of: .object(object), lists: ListTypes(info)),
                removed: [],
                apiVersion: info.type.apiVersion,
                subresource: nil
            )
        object["metadata"] = meta.json
        if info.type.plural == "customresourcedefinitions" {
            object = try self.establishCRD(object)
        }
        if context.dryRun { return object }
        let rv = self.nextRV()
        object.setResourceVersion(rv)
        self.store(info, key, object)
        self.emit(.added, info, object, old: nil)
        self.collectIfOrphaned(info, key)
        return self.current(info, key) ?? object
    }

    /// The garbage collector also removes dependents whose owners (by uid) are all gone when they are written,
    /// e.g. created by a controller that acted on a stale cache after the owner was deleted.
    mutating func collectIfOrphaned(_ info: ResourceInfo, _ key: ObjectKey) {
        guard let object = self.current(info, key) else { return }
        let owners = ObjectMeta(object: object["metadata"]?.objectValue ?? [:]).ownerReferences ?? []
        guard !owners.isEmpty, owners.allSatisfy({ self.uidIndex[$0.uid ?? ""] == nil }) else { return }
        _ = try? self.delete(
            info,
            namespace: key.namespace,
            name: key.name,
            policy: "Background",
            preconditions: (nil, nil)
        )
    }

    mutating func store(_ info: ResourceInfo, _ key: ObjectKey, _ object: JSONObject) {
        self.objects[info.storageKey, default: [:]][key] = object
        if let uid = object["metadata"]?["uid"]?.stringValue { self.uidIndex[uid] = (info.storageKey, key) }
    }

    /// Schema (defaults, pruning, validation) and metadata validation for a candidate object.
    mutating func admit(
        _ info: ResourceInfo,
        name: String,
        object: JSONObject,
        old: JSONObject?,
        context: WriteContext
    ) throws(APIError) -> JSONObject {
        var value = JSONValue.object(object)
        var errors: [FieldError] = []
        if let schema = info.schema {
            let (unknown, schemaErrors) = schema.process(&value)
            if !unknown.isEmpty {
                switch context.fieldValidation {
                case "Strict":
                    let list = unknown.map { "unknown field \"\($0)\"" }.joined(separator: ", ")
                    throw .badRequest(
                        "\(info.type.kind) in version \"\(info.type.version)\" cannot be handled as a \(info.type.kind): "
                            + "strict decoding error: \(list)"
                    )
                case "Ignore": break
                default: self.warnings.append(contentsOf: unknown.map { "unknown field \"\($0)\"" })
                }
            }
            errors += schemaErrors
        }
        let meta = ObjectMeta(object: value["metadata"]?.objectValue ?? [:])
        if let owners = meta.ownerReferences {
            for (index, owner) in owners.enumerated() {
                for field in ["apiVersion", "kind", "name", "uid"]
                where owner.object[field]?.stringValue?.isEmpty ?? true {
                    errors.append(.required("metadata.ownerReferences[\(index)].\(field)"))
                }
            }
            if owners.filter({ $0.controller == true }).count > 1 {
                errors.append(
                    .invalid(
                        "metadata.ownerReferences",
                        .array(owners.map(\.json)),
                        "Only one reference can have Controller set to true"
                    )
                )
            }
        }
        if let old {
            let oldMeta = ObjectMeta(object: old["metadata"]?.objectValue ?? [:])
            if oldMeta.deletionTimestamp != nil {
                let added = Set(meta.finalizers ?? []).subtracting(oldMeta.finalizers ?? [])
                if !added.isEmpty {
                    errors.append(
                        .forbidden(
                            "metadata.finalizers",
                            "no new finalizers can be added if the object is being deleted, found new finalizers "
                                + "[]string{\(added.sorted().map { "\"\($0)\"" }.joined(separator: ", "))}"
                        )
                    )
                }
            }
        }
        if info.type.plural == "customresourcedefinitions" {
            errors += Self.validateCRD(CustomResourceDefinition(object: value.objectValue ?? [:]))
        }
        if !errors.isEmpty { throw .invalid(info, name, errors) }
        return value.objectValue ?? [:]
    }

    // MARK: Update

    /// Commits `candidate` as the new state of an existing object with the server's update rules.
    mutating func commitUpdate(
        _ info: ResourceInfo,
        old: JSONObject,
        candidate: JSONObject,
        subresource: String?,
        context: WriteContext,
        managedFields: [ManagedFieldsEntry]? = nil
    ) throws(APIError) -> JSONObject {
        let oldMeta = ObjectMeta(object: old["metadata"]?.objectValue ?? [:])
        let name = oldMeta.name ?? ""
        var candidate = candidate
        var meta = ObjectMeta(object: candidate["metadata"]?.objectValue ?? [:])
        if let rv = meta.resourceVersion, !rv.isEmpty, rv != oldMeta.resourceVersion {
            throw .conflict(info, name)
        }
        if let uid = meta.uid, !uid.isEmpty, uid != oldMeta.uid {
            throw .conflict(
                info,
                name,
                "Precondition failed: UID in precondition: \(uid), UID in object meta: \(oldMeta.uid ?? "")"
            )
        }
        if let requested = meta.name, !requested.isEmpty, requested != name {
            throw .badRequest("the name of the object (\(requested)) does not match the name on the URL (\(name))")
        }
        if info.hasStatus {
            if subresource == "status" {
                var merged = old
                merged["status"] = candidate["status"]
                if candidate["status"] == nil { merged.removeValue(forKey: "status") }
                candidate = merged
                meta = oldMeta
            } else {
                candidate["status"] = old["status"]
                if old["status"] == nil { candidate.removeValue(forKey: "status") }
            }
        }
        candidate["apiVersion"] = .string(info.type.apiVersion)
        candidate["kind"] = .string(info.type.kind)
        meta.name = oldMeta.name
        meta.namespace = oldMeta.namespace
        meta.uid = oldMeta.uid
        meta.creationTimestamp = oldMeta.creationTimestamp
        meta.deletionTimestamp = oldMeta.deletionTimestamp
        meta.deletionGracePeriodSeconds = oldMeta.deletionGracePeriodSeconds
        meta.generation = oldMeta.generation
        meta.resourceVersion = oldMeta.resourceVersion
        meta.managedFields = oldMeta.managedFields
        candidate["metadata"] = meta.json
        candidate = try self.admit(info, name: name, object: candidate, old: old, context: context)
        meta = ObjectMeta(object: candidate["metadata"]?.objectValue ?? [:])
        if info.hasGeneration, Self.specChanged(old, candidate, statusIsSubresource: info.hasStatus) {
            meta.generation = (oldMeta.generation ?? 0) + 1
        }
        // Ownership: appliers pass their computed entries; every other write takes the fields it changed.
        if let managedFields {
            meta.managedFields = managedFields.isEmpty ? nil : managedFields
        } else {
            var probe = candidate
            probe["metadata"] = meta.json
            let lists = ListTypes(info)
            let before = FieldSet(of: .object(old), lists: lists)
            let after = FieldSet(of: .object(probe), lists: lists)
            // Changed: a value that differs, or a list item that is new.
            let changed = after.paths.filter { path in
                let was = JSONValue.object(old).value(atFieldPath: path)
                if let last = path.last, FieldPath.isItem(last) { return was == nil }
                return was != JSONValue.object(probe).value(atFieldPath: path)
            }
            let removed = before.paths.subtracting(after.paths)
            let entries = Self.updateEntries(
                oldMeta.managedFields ?? [],
                manager: context.manager,
                changed: FieldSet(Set(changed)),
                removed: removed,
                apiVersion: info.type.apiVersion,
                subresource: subresource
            )
            meta.managedFields = entries.isEmpty ? nil : entries
        }
        candidate["metadata"] = meta.json
        if info.type.plural == "customresourcedefinitions" {
            candidate["status"] = old["status"]
        }
        if Self.equalIgnoringManagedTimes(old, candidate) { return old }
        if context.dryRun { return candidate }
        let rv = self.nextRV()
        candidate.setResourceVersion(rv)
        let key = self.key(info, namespace: meta.namespace, name: name)
        if meta.deletionTimestamp != nil, meta.finalizers?.isEmpty ?? true {
            self.store(info, key, candidate)
            self.remove(info, key, candidate, bumpRV: false)
            return candidate
        }
        self.store(info, key, candidate)
        self.emit(.modified, info, candidate, old: old)
        self.collectIfOrphaned(info, key)
        if info.type.plural == "customresourcedefinitions" {
            self.register(CustomResourceDefinition(object: candidate))
        }
        return candidate
    }

    static func specChanged(_ old: JSONObject, _ new: JSONObject, statusIsSubresource: Bool) -> Bool {
        var a = old
        var b = new
        for key in ["metadata", "apiVersion", "kind"] + (statusIsSubresource ? ["status"] : []) {
            a.removeValue(forKey: key)
            b.removeValue(forKey: key)
        }
        return a != b
    }

    static func equalIgnoringManagedTimes(_ a: JSONObject, _ b: JSONObject) -> Bool {
        func strip(_ object: JSONObject) -> JSONObject {
            var object = object
            var meta = object["metadata"]?.objectValue ?? [:]
            if case .array(let entries)? = meta["managedFields"] {
                meta["managedFields"] = .array(
                    entries.map {
                        var entry = $0.objectValue ?? [:]
                        entry.removeValue(forKey: "time")
                        return .object(entry)
                    }
                )
            }
            object["metadata"] = .object(meta)
            return object
        }
        return strip(a) == strip(b)
    }

    /// Managed-fields entries after a non-apply write by `manager`.
    static func updateEntries(
        _ entries: [ManagedFieldsEntry],
        manager: String,
        changed: FieldSet,
        removed: Set<[String]>,
        apiVersion: String,
        subresource: String?
    ) -> [ManagedFieldsEntry] {
        var result: [ManagedFieldsEntry] = []
        var own = FieldSet()
        for entry in entries {
            var set = FieldSet(fieldsV1: entry.fieldsV1 ?? [:])
            set.paths.subtract(removed)
            let isMine = entry.manager == manager && entry.operation == "Update" && entry.subresource == subresource
            if isMine {
                own = set
                continue
            }
            set.paths = set.paths.filter { path in !changed.paths.contains { FieldSet.covers($0, path) } }
            if set.paths.isEmpty { continue }
            var updated = entry
            updated.fieldsV1 = set.fieldsV1
            result.append(updated)
        }
        own.paths.formUnion(changed.paths)
        if !own.paths.isEmpty {
            var entry = ManagedFieldsEntry()
            entry.manager = manager
            entry.operation = "Update"
            entry.apiVersion = apiVersion
            entry.time = KubeTime.format(Date())
            entry.object["fieldsType"] = "FieldsV1"
            entry.fieldsV1 = own.fieldsV1
            entry.subresource = subresource
            result.append(entry)
        }
        return result
    }

    // MARK: Delete

    enum DeleteOutcome {
        case removed(JSONObject)
        case pending(JSONObject)
    }

    mutating func delete(
        _ info: ResourceInfo,
        namespace: String?,
        name: String,
        policy: String?,
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
        if policy == "Foreground", !finalizers.contains("foregroundDeletion") {
            finalizers.append("foregroundDeletion")
        }
        if policy == "Orphan", !finalizers.contains("orphan") { finalizers.append("orphan") }
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
        if finalizers.contains("foregroundDeletion") { self.deleteDependents(of: meta.uid ?? "", policy: "Foreground") }
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
                    policy: "Background",
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
        _ = try? self.commitUpdate(
            info,
            old: object,
            candidate: updated,
            subresource: nil,
            context: .init(manager: "kube-controller-manager")
        )
    }

    mutating func deleteDependents(of uid: String, policy: String) {
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
        if finalizers.contains("orphan"), dependents.isEmpty || true {
            if !dependents.isEmpty { return }
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
        _ = try? self.commitUpdate(
            info,
            old: object,
            candidate: updated,
            subresource: nil,
            context: .init(manager: "kube-controller-manager")
        )
    }

    // MARK: CustomResourceDefinitions

    static func validateCRD(_ crd: CustomResourceDefinition) -> [FieldError] {
        var errors: [FieldError] = []
        let spec = crd.spec
        let group = spec.group ?? ""
        let plural = spec.names.plural ?? ""
        if group.isEmpty { errors.append(.required("spec.group")) }
        if plural.isEmpty { errors.append(.required("spec.names.plural")) }
        if (spec.names.kind ?? "").isEmpty { errors.append(.required("spec.names.kind")) }
        if crd.metadata.name != "\(plural).\(group)" {
            errors.append(
                .invalid(
                    "metadata.name",
                    .string(crd.metadata.name ?? ""),
                    "must be spec.names.plural+\".\"+spec.group"
                )
            )
        }
        if spec.scope != "Namespaced" && spec.scope != "Cluster" {
            errors.append(
                .init(
                    reason: "FieldValueNotSupported",
                    field: "spec.scope",
                    detail:
                        "Unsupported value: \(FieldError.renderValue(.string(spec.scope ?? ""))): supported values: "
                        + "\"Cluster\", \"Namespaced\""
                )
            )
        }
        let versions = spec.versions ?? []
        if versions.isEmpty {
            errors.append(.required("spec.versions", "must have exactly one version marked as storage version"))
        }
        if versions.filter({ $0.storage == true }).count != 1, !versions.isEmpty {
            errors.append(.invalid("spec.versions", .null, "must have exactly one version marked as storage version"))
        }
        for (index, version) in versions.enumerated() where version.schema?.openAPIV3Schema == nil {
            errors.append(.required("spec.versions[\(index)].schema.openAPIV3Schema", "schemas are required"))
        }
        return errors
    }

    mutating func establishCRD(_ object: JSONObject) throws(APIError) -> JSONObject {
        var crd = CustomResourceDefinition(object: object)
        var names = crd.spec.names
        if names.singular == nil { names.singular = names.kind?.lowercased() }
        if names.listKind == nil { names.listKind = (names.kind ?? "") + "List" }
        crd.spec.names = names
        let group = crd.spec.group ?? ""
        if let existing = self.resources["\(group)/\(names.plural ?? "")"], !existing.isCustom {
            throw .invalid(
                self.resources["apiextensions.k8s.io/customresourcedefinitions"]!,
                crd.metadata.name ?? "",
                [.invalid("spec.names.plural", .string(names.plural ?? ""), "conflicts with a built-in resource")]
            )
        }
        let now = KubeTime.format(Date())
        crd.object["status"] = [
            "conditions": [
                [
                    "type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found",
                    "lastTransitionTime": .string(now),
                ],
                [
                    "type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted", "lastTransitionTime": .string(now),
                ],
            ],
            "acceptedNames": names.json,
            "storedVersions": .array(
                (crd.spec.versions ?? []).filter { $0.storage == true }.compactMap { $0.name.map(JSONValue.string) }
            ),
        ]
        self.register(crd)
        return crd.object
    }

    mutating func register(_ crd: CustomResourceDefinition) {
        let spec = crd.spec
        let versions = (spec.versions ?? []).filter { $0.served ?? true }
        guard let storage = versions.first(where: { $0.storage == true }) ?? versions.first else { return }
        let names = spec.names
        let type = ResourceType(
            group: spec.group ?? "",
            version: versions.first?.name ?? "v1",
            kind: names.kind ?? "",
            plural: names.plural ?? "",
            namespaced: spec.scope != "Cluster"
        )
        var info = ResourceInfo(
            type: type,
            versions: versions.compactMap(\.name),
            singular: names.singular ?? type.kind.lowercased(),
            shortNames: names.shortNames ?? [],
            categories: names.categories ?? [],
            hasStatus: storage.subresources?.status != nil,
            hasGeneration: true,
            isCustom: true
        )
        info.schema = storage.schema?.openAPIV3Schema.map { StructuralSchema(root: $0) }
        info.printerColumns = storage.additionalPrinterColumns ?? []
        self.resources[info.storageKey] = info
        self.discoveryGeneration += 1
    }

    mutating func unregister(_ crd: CustomResourceDefinition) {
        let storageKey = "\(crd.spec.group ?? "")/\(crd.spec.names.plural ?? "")"
        guard let info = self.resources[storageKey], info.isCustom else { return }
        for key in (self.objects[storageKey] ?? [:]).keys {
            if let object = self.objects[storageKey]?[key] { self.remove(info, key, object, bumpRV: true) }
        }
        self.resources.removeValue(forKey: storageKey)
        self.objects.removeValue(forKey: storageKey)
        self.discoveryGeneration += 1
    }
}

extension Dictionary where Key == String, Value == JSONValue {
    mutating func setResourceVersion(_ rv: Int64) {
        var meta = self["metadata"]?.objectValue ?? [:]
        meta["resourceVersion"] = .string(String(rv))
        self["metadata"] = .object(meta)
    }
}
