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

/// `fieldValidation` of a write: what to do with fields the schema does not know.
enum FieldValidation: String, Sendable {
    /// Refuse the write (400).
    case strict = "Strict"
    /// Drop the fields and return a warning header (the default).
    case warn = "Warn"
    /// Drop the fields silently.
    case ignore = "Ignore"
}

/// `propagationPolicy` of a delete: what happens to the dependents (objects whose ownerReferences name it).
enum DeletionPropagation: String, Sendable {
    /// Dependents lose the owner reference and stay.
    case orphan = "Orphan"
    /// The owner goes at once; the garbage collector deletes dependents afterwards (the default).
    case background = "Background"
    /// Dependents go first; the owner waits for them (the `foregroundDeletion` finalizer).
    case foreground = "Foreground"
}

/// Options of one write.
struct WriteContext: Sendable {
    var manager: String
    var fieldValidation: FieldValidation = .warn
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
            policy: .background,
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
                case .strict:
                    let list = unknown.map { "unknown field \"\($0)\"" }.joined(separator: ", ")
                    throw .badRequest(
                        "\(info.type.kind) in version \"\(info.type.version)\" cannot be handled as a \(info.type.kind): "
                            + "strict decoding error: \(list)"
                    )
                case .ignore: break
                case .warn: self.warnings.append(contentsOf: unknown.map { "unknown field \"\($0)\"" })
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
}

extension Dictionary where Key == String, Value == JSONValue {
    mutating func setResourceVersion(_ rv: Int64) {
        var meta = self["metadata"]?.objectValue ?? [:]
        meta["resourceVersion"] = .string(String(rv))
        self["metadata"] = .object(meta)
    }
}
