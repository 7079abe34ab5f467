// ServerState+Apply.swift: server-side apply (field managers, conflicts, force) and non-apply patches.

import Foundation
import KubeModel

extension ServerState {
    /// Merge patch, JSON patch, strategic merge patch (built-ins only) and apply on an item or its /status.
    mutating func patch(
        _ info: ResourceInfo,
        namespace: String?,
        name: String,
        contentType: String,
        body: JSONValue,
        subresource: String?,
        context: WriteContext
    ) throws(APIError) -> (object: JSONObject, created: Bool) {
        if contentType.hasPrefix("application/apply-patch") {
            return try self.apply(
                info,
                namespace: namespace,
                name: name,
                body: body,
                subresource: subresource,
                context: context
            )
        }
        if context.force {
            throw .invalid(info, name, [.forbidden("force", "may not be specified for non-apply patch")])
        }
        let key = self.key(info, namespace: namespace, name: name)
        guard let old = self.current(info, key) else { throw .notFound(info, name) }
        var patched: JSONValue
        switch contentType {
        case let type where type.hasPrefix("application/merge-patch+json"):
            patched = JSONValue.object(old).applyingMergePatch(body)
        case let type where type.hasPrefix("application/json-patch+json"):
            do {
                patched = try JSONPatch.apply(body, to: .object(old))
            } catch let error as PatchError {
                throw .invalid(
                    info,
                    name,
                    [FieldError(reason: "FieldValueInvalid", field: "patch", detail: error.message)]
                )
            } catch {
                throw .badRequest("\(error)")
            }
        case let type where type.hasPrefix("application/strategic-merge-patch+json"):
            if info.isCustom {
                throw .unsupportedMediaType(
                    "the body of the request was in an unknown format - accepted media types include: "
                        + "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
                )
            }
            patched = JSONValue.object(old).applyingMergePatch(Self.strippingDirectives(body))
        default:
            throw .unsupportedMediaType(
                "the body of the request was in an unknown format - accepted media types include: "
                    + "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
            )
        }
        guard case .object(var candidate) = patched else { throw .badRequest("patch result is not an object") }
        if context.fieldValidation == .strict, let schema = info.schema {
            var probe = patched
            let (unknown, _) = schema.process(&probe)
            if !unknown.isEmpty {
                throw .invalid(
                    info,
                    name,
                    [
                        FieldError(
                            reason: "FieldValueInvalid",
                            field: "patch",
                            detail: "strict decoding error: "
                                + unknown.map { "unknown field \"\($0)\"" }.joined(separator: ", ")
                        )
                    ]
                )
            }
        }
        // A patch carrying no resourceVersion applies to the latest state.
        if candidate["metadata"]?["resourceVersion"] == nil || body["metadata"]?["resourceVersion"] == nil {
            var meta = candidate["metadata"]?.objectValue ?? [:]
            meta["resourceVersion"] = old["metadata"]?["resourceVersion"]
            candidate["metadata"] = .object(meta)
        }
        var relaxed = context
        relaxed.fieldValidation = .ignore
        return (
            try self.commitUpdate(info, old: old, candidate: candidate, subresource: subresource, context: relaxed),
            false
        )
    }

    static func strippingDirectives(_ value: JSONValue) -> JSONValue {
        guard case .object(let object) = value else { return value }
        var result: JSONObject = [:]
        for (key, child) in object where !key.hasPrefix("$") { result[key] = strippingDirectives(child) }
        return .object(result)
    }

    /// Server-side apply.
    mutating func apply(
        _ info: ResourceInfo,
        namespace: String?,
        name: String,
        body: JSONValue,
        subresource: String?,
        context: WriteContext
    ) throws(APIError) -> (object: JSONObject, created: Bool) {
        guard case .object(var applied) = body else { throw .badRequest("apply patch must be an object") }
        if context.manager.isEmpty {
            throw APIError(
                code: 422,
                reason: "Invalid",
                message:
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                details: .init(
                    group: "meta.k8s.io",
                    kind: "PatchOptions",
                    causes: [
                        StatusCause(
                            reason: "FieldValueRequired",
                            message: "Required value: is required for apply patch",
                            field: "fieldManager"
                        )
                    ]
                )
            )
        }
        if applied["metadata"]?["managedFields"] != nil {
            throw .badRequest("metadata.managedFields must be nil")
        }
        if info.hasStatus {
            if subresource == "status" {
                applied = applied.filter { ["apiVersion", "kind", "metadata", "status"].contains($0.key) }
            } else {
                applied.removeValue(forKey: "status")
            }
        }
        // Unknown fields in an apply body fail whatever fieldValidation says.
        if let schema = info.schema {
            var probe = JSONValue.object(applied)
            let (unknown, _) = schema.process(&probe)
            if let first = unknown.first {
                throw .internalError(
                    "failed to create typed patch object (\(info.type.apiVersion), Kind=\(info.type.kind)): "
                        + ".\(first): field not declared in schema"
                )
            }
        }
        let lists = ListTypes(info)
        let appliedSet = FieldSet(of: .object(applied), lists: lists)
        let key = self.key(info, namespace: namespace, name: name)
        let now = KubeTime.format(Date())
        func entry(_ set: FieldSet) -> ManagedFieldsEntry {
            var entry = ManagedFieldsEntry()
            entry.manager = context.manager
            entry.operation = "Apply"
            entry.apiVersion = info.type.apiVersion
            entry.time = now
            entry.object["fieldsType"] = "FieldsV1"
            entry.fieldsV1 = set.fieldsV1
            entry.subresource = subresource
            return entry
        }
        guard let old = self.current(info, key) else {
            if subresource != nil { throw .notFound(info, name) }
            var body = applied
            var meta = body["metadata"]?.objectValue ?? [:]
            meta["name"] = .string(name)
            body["metadata"] = .object(meta)
            let created = try self.create(
                info,
                namespace: namespace,
                body: body,
                context: context,
                managedFields: [entry(appliedSet)]
            )
            return (created, true)
        }
        let live = JSONValue.object(old)
        let appliedValue = JSONValue.object(applied)
        let entries = ObjectMeta(object: old["metadata"]?.objectValue ?? [:]).managedFields ?? []
        // Whether applying changes the value at a path (for a list item: whether it adds the item).
        func differs(_ path: [String]) -> Bool {
            if let last = path.last, FieldPath.isItem(last) {
                return (live.value(atFieldPath: path) == nil) != (appliedValue.value(atFieldPath: path) == nil)
            }
            return live.value(atFieldPath: path) != appliedValue.value(atFieldPath: path)
        }
        // Conflicts: fields in the body owned by another manager with a different value.
        var conflicts: [(manager: ManagedFieldsEntry, path: [String])] = []
        // Sorted once by their display form (what messages show), not once per other manager and comparison.
        let appliedPaths = appliedSet.paths.map { (FieldPath.display($0), $0) }.sorted { $0.0 < $1.0 }.map(\.1)
        for other in entries {
            let isSelf =
                other.manager == context.manager && other.operation == "Apply" && other.subresource == subresource
            if isSelf { continue }
            let owned = FieldSet(fieldsV1: other.fieldsV1 ?? [:])
            for path in appliedPaths {
                for ownedPath in owned.paths where FieldSet.covers(ownedPath, path) {
                    if differs(ownedPath) && differs(path) {
                        conflicts.append((other, path))
                        break
                    }
                }
            }
        }
        if !conflicts.isEmpty && !context.force {
            throw Self.conflictError(conflicts)
        }
        // Merge the applied configuration, then drop fields this manager stopped applying (unless owned elsewhere).
        var merged = live.mergingApplied(appliedValue, lists: lists)
        let previous =
            entries.first {
                $0.manager == context.manager && $0.operation == "Apply" && $0.subresource == subresource
            }.map { FieldSet(fieldsV1: $0.fieldsV1 ?? [:]) } ?? FieldSet()
        let others = entries.filter {
            !($0.manager == context.manager && $0.operation == "Apply" && $0.subresource == subresource)
        }
        let ownedByOthers = others.reduce(into: Set<[String]>()) {
            $0.formUnion(FieldSet(fieldsV1: $1.fieldsV1 ?? [:]).paths)
        }
        // Deepest first, so that the fields of a dropped list item go before the item.
        for path in previous.paths.subtracting(appliedSet.paths).sorted(by: { $0.count > $1.count }) {
            // Kept when another manager owns the path, something below it, or an atomic value above it.
            let ownedElsewhere = ownedByOthers.contains { owned in
                owned.starts(with: path) || FieldSet.covers(owned, path)
            }
            if ownedElsewhere { continue }
            // Key fields go with their item, never on their own.
            if path.count >= 2, FieldPath.isItem(path[path.count - 2]),
                FieldPath.keyFields(path[path.count - 2]).contains(path[path.count - 1])
            {
                continue
            }
            merged.removeValue(atFieldPath: path[...])
            // Drop maps and lists the removal left empty, unless someone owns them as a value.
            var parent = Array(path.dropLast())
            while !parent.isEmpty, let value = merged.value(atFieldPath: parent),
                value == .object([:]) || value == .array([]),
                !ownedByOthers.contains(parent)
            {
                merged.removeValue(atFieldPath: parent[...])
                parent.removeLast()
            }
        }
        var newEntries: [ManagedFieldsEntry] = []
        for var other in others {
            var set = FieldSet(fieldsV1: other.fieldsV1 ?? [:])
            if context.force {
                let taken = Set(conflicts.filter { $0.manager == other }.map(\.path))
                set.paths = set.paths.filter { owned in !taken.contains { FieldSet.covers($0, owned) } }
            }
            if set.paths.isEmpty { continue }
            other.fieldsV1 = set.fieldsV1
            newEntries.append(other)
        }
        newEntries.append(entry(appliedSet))
        guard case .object(var candidate) = merged else { throw .badRequest("apply result is not an object") }
        var meta = candidate["metadata"]?.objectValue ?? [:]
        meta["resourceVersion"] = old["metadata"]?["resourceVersion"]
        candidate["metadata"] = .object(meta)
        var relaxed = context
        relaxed.fieldValidation = .ignore
        let result = try self.commitUpdate(
            info,
            old: old,
            candidate: candidate,
            subresource: subresource,
            context: relaxed,
            managedFields: newEntries
        )
        return (result, false)
    }

    static func describe(_ manager: ManagedFieldsEntry) -> String {
        if manager.operation == "Apply" { return "\"\(manager.manager ?? "")\"" }
        var text = "\"\(manager.manager ?? "")\" using \(manager.apiVersion ?? "")"
        if let time = manager.time { text += " at \(time)" }
        if let subresource = manager.subresource { text += " with subresource \"\(subresource)\"" }
        return text
    }

    static func conflictError(_ conflicts: [(manager: ManagedFieldsEntry, path: [String])]) -> APIError {
        let causes = conflicts.map {
            StatusCause(
                reason: "FieldManagerConflict",
                message: "conflict with \(describe($0.manager))",
                field: FieldPath.display($0.path)
            )
        }
        let message: String
        if conflicts.count == 1 {
            message =
                "Apply failed with 1 conflict: conflict with \(describe(conflicts[0].manager)): "
                + FieldPath.display(conflicts[0].path)
        } else {
            let grouped = Dictionary(grouping: conflicts, by: { describe($0.manager) })
            message =
                "Apply failed with \(conflicts.count) conflicts: "
                + grouped.keys.sorted().map { manager in
                    "conflicts with \(manager):\n"
                        + grouped[manager]!.map { "- " + FieldPath.display($0.path) }
                        .joined(separator: "\n")
                }.joined(separator: "\n")
        }
        return APIError(code: 409, reason: "Conflict", message: message, details: .init(causes: causes))
    }
}

enum BuiltinResources {
    static func make(
        _ group: String,
        _ kind: String,
        _ plural: String,
        namespaced: Bool,
        short: [String] = [],
        status: Bool = false,
        generation: Bool = false,
        createOnly: Bool = false,
        categories: [String] = []
    ) -> ResourceInfo {
        let version = group == "" ? "v1" : "v1"
        return ResourceInfo(
            type: ResourceType(group: group, version: version, kind: kind, plural: plural, namespaced: namespaced),
            versions: [version],
            singular: kind.lowercased(),
            shortNames: short,
            categories: categories,
            hasStatus: status,
            hasGeneration: generation,
            createOnly: createOnly
        )
    }

    static let all: [ResourceInfo] = [
        make("", "Namespace", "namespaces", namespaced: false, short: ["ns"], status: true),
        make("", "ConfigMap", "configmaps", namespaced: true, short: ["cm"]),
        make("", "Secret", "secrets", namespaced: true),
        make("", "Service", "services", namespaced: true, short: ["svc"], status: true, categories: ["all"]),
        make("", "ServiceAccount", "serviceaccounts", namespaced: true, short: ["sa"]),
        make("", "Pod", "pods", namespaced: true, short: ["po"], status: true, generation: true, categories: ["all"]),
        make("", "Node", "nodes", namespaced: false, short: ["no"], status: true),
        make("", "Event", "events", namespaced: true, short: ["ev"]),
        make(
            "apps",
            "DaemonSet",
            "daemonsets",
            namespaced: true,
            short: ["ds"],
            status: true,
            generation: true,
            categories: ["all"]
        ),
        make(
            "apps",
            "Deployment",
            "deployments",
            namespaced: true,
            short: ["deploy"],
            status: true,
            generation: true,
            categories: ["all"]
        ),
        make("rbac.authorization.k8s.io", "Role", "roles", namespaced: true),
        make("rbac.authorization.k8s.io", "RoleBinding", "rolebindings", namespaced: true),
        make("rbac.authorization.k8s.io", "ClusterRole", "clusterroles", namespaced: false),
        make("rbac.authorization.k8s.io", "ClusterRoleBinding", "clusterrolebindings", namespaced: false),
        make("coordination.k8s.io", "Lease", "leases", namespaced: true),
        make("events.k8s.io", "Event", "events", namespaced: true, short: ["ev"]),
        make(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            namespaced: false,
            short: ["crd", "crds"],
            status: true,
            generation: true
        ),
        make(
            "authorization.k8s.io",
            "SelfSubjectAccessReview",
            "selfsubjectaccessreviews",
            namespaced: false,
            createOnly: true
        ),
    ]
}
