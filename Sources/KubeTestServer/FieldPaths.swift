// FieldPaths.swift: associative lists for server-side apply: list types (`x-kubernetes-list-type` in CRD schemas,
// the well-known keyed lists of built-in kinds), list-item path components (`k:{"name":"x"}`, `v:"x"`), and reading,
// removing and merging values along such paths.

import KubeModel

/// How an array field merges and is owned under server-side apply.
enum ListType: Sendable, Hashable {
    /// Replaced as a whole and owned as one field.
    case atomic
    /// Items are identified by these key fields (`x-kubernetes-list-type: map`); each item and its fields are owned
    /// separately.
    case map([String])
    /// Items are scalar values owned one by one (`x-kubernetes-list-type: set`).
    case set
}

/// The list types of one resource: its CRD schema, or the well-known lists of the built-in kinds.
struct ListTypes: Sendable {
    var schema: StructuralSchema?
    var isCustom: Bool

    init(schema: StructuralSchema? = nil, isCustom: Bool = false) {
        self.schema = schema
        self.isCustom = isCustom
    }

    init(_ info: ResourceInfo) { self.init(schema: info.schema, isCustom: info.isCustom) }

    /// Lists that are containers of a pod spec.
    static let containerLists: Set<String> = ["containers", "initContainers", "ephemeralContainers"]

    /// The list type of the array at a field path (components as in ``FieldSet``).
    func type(at path: [String]) -> ListType {
        guard let last = path.last, !FieldPath.isItem(last) else { return .atomic }
        if path.first == "metadata" {
            guard path.count == 2 else { return .atomic }
            switch last {
            case "finalizers": return .set
            case "ownerReferences": return .map(["uid"])
            default: return .atomic
            }
        }
        if let schema = self.schema {
            var node = schema.root
            for component in path {
                if FieldPath.isItem(component) {
                    guard let items = node["items"] else { return .atomic }
                    node = items
                } else if let property = node[path: ["properties", component]] {
                    node = property
                } else if let additional = node["additionalProperties"], additional.objectValue != nil {
                    node = additional
                } else {
                    return .atomic
                }
            }
            switch node["x-kubernetes-list-type"]?.stringValue {
            case "map":
                let keys = node["x-kubernetes-list-map-keys"]?.arrayValue?.compactMap(\.stringValue) ?? []
                return keys.isEmpty ? .atomic : .map(keys)
            case "set":
                return .set
            default:
                return .atomic
            }
        }
        if self.isCustom { return .atomic }
        // Built-in kinds: the keys k8s.io/api declares with +listType=map / +listMapKey.
        switch last {
        case "containers", "initContainers", "ephemeralContainers", "volumes", "env":
            return .map(["name"])
        case "volumeMounts":
            return .map(["mountPath"])
        case "volumeDevices":
            return .map(["devicePath"])
        case "ports":
            if path.count >= 3, FieldPath.isItem(path[path.count - 2]),
                Self.containerLists.contains(path[path.count - 3])
            {
                return .map(["containerPort", "protocol"])
            }
            if path.count == 2, path[0] == "spec" { return .map(["port", "protocol"]) }
            return .atomic
        case "conditions":
            return .map(["type"])
        default:
            // tolerations, args, command, ... are atomic.
            return .atomic
        }
    }
}

/// Path components of list items. A component that starts with ``FieldPath/itemMarker`` names a list item as
/// `managedFields` does (`k:{"name":"x"}` for a list-map item, `v:"x"` for a set item); any other component is an
/// object field name.
enum FieldPath {
    static let itemMarker: Character = "\u{0}"

    static func isItem(_ component: String) -> Bool { component.first == Self.itemMarker }

    /// The managedFields key of a component (`f:name`, `k:{...}`, `v:...`).
    static func fieldsV1Key(_ component: String) -> String {
        isItem(component) ? String(component.dropFirst()) : "f:" + component
    }

    /// The component of a managedFields key, or nil for `.` and unknown prefixes.
    static func component(fieldsV1Key key: String) -> String? {
        if key.hasPrefix("f:") { return String(key.dropFirst(2)) }
        if key.hasPrefix("k:") || key.hasPrefix("v:") { return String(Self.itemMarker) + key }
        return nil
    }

    /// The component naming an item of a list of the given type, or nil when the item cannot be keyed.
    static func component(for item: JSONValue, in type: ListType) -> String? {
        switch type {
        case .atomic:
            return nil
        case .set:
            return String(Self.itemMarker) + "v:" + String(decoding: item.serialized(), as: UTF8.self)
        case .map(let keys):
            guard case .object(let object) = item else { return nil }
            var key: JSONObject = [:]
            for name in keys { key[name] = object[name] }
            guard !key.isEmpty else { return nil }
            return String(Self.itemMarker) + "k:" + String(decoding: JSONValue.object(key).serialized(), as: UTF8.self)
        }
    }

    /// Whether a list item is the one a component names.
    static func matches(_ item: JSONValue, _ component: String) -> Bool {
        let key = component.dropFirst()
        if key.hasPrefix("v:") {
            return String(decoding: item.serialized(), as: UTF8.self) == key.dropFirst(2)
        }
        guard key.hasPrefix("k:"), case .object(let object) = item,
            let parsed = try? JSONValue.parse(Array(key.dropFirst(2).utf8)), case .object(let fields) = parsed
        else { return false }
        return fields.allSatisfy { object[$0.key] == $0.value }
    }

    /// The key fields of a list-map item component (`name` for `k:{"name":"x"}`).
    static func keyFields(_ component: String) -> Set<String> {
        let key = component.dropFirst()
        guard key.hasPrefix("k:"), let parsed = try? JSONValue.parse(Array(key.dropFirst(2).utf8)),
            case .object(let fields) = parsed
        else { return [] }
        return Set(fields.keys)
    }

    /// A path as the API server prints it in conflicts: `.spec.containers[name="a"].image`, `.metadata.finalizers[="x"]`.
    static func display(_ path: [String]) -> String {
        var text = ""
        for component in path {
            guard isItem(component) else {
                text += "." + component
                continue
            }
            let key = component.dropFirst()
            if key.hasPrefix("v:") {
                text += "[=" + key.dropFirst(2) + "]"
            } else if let parsed = try? JSONValue.parse(Array(key.dropFirst(2).utf8)),
                case .object(let fields) = parsed
            {
                text +=
                    "["
                    + fields.keys.sorted().map { "\($0)=" + String(decoding: fields[$0]!.serialized(), as: UTF8.self) }
                    .joined(separator: ",") + "]"
            } else {
                text += "[" + key + "]"
            }
        }
        return text
    }
}

extension JSONValue {
    /// The value at a field path whose components may name list items, or nil.
    func value(atFieldPath path: [String]) -> JSONValue? {
        var current = self
        for component in path {
            if FieldPath.isItem(component) {
                guard case .array(let items) = current,
                    let item = items.first(where: { FieldPath.matches($0, component) })
                else { return nil }
                current = item
            } else {
                guard case .object(let object) = current, let next = object[component] else { return nil }
                current = next
            }
        }
        return current
    }

    /// Removes the value at a field path whose components may name list items (a list item is taken out of its list).
    mutating func removeValue(atFieldPath path: ArraySlice<String>) {
        guard let first = path.first else { return }
        if FieldPath.isItem(first) {
            guard case .array(var items) = self, let index = items.firstIndex(where: { FieldPath.matches($0, first) })
            else { return }
            if path.count == 1 {
                items.remove(at: index)
            } else {
                items[index].removeValue(atFieldPath: path.dropFirst())
            }
            self = .array(items)
        } else {
            guard case .object(var object) = self, var child = object[first] else { return }
            if path.count == 1 {
                object.removeValue(forKey: first)
            } else {
                child.removeValue(atFieldPath: path.dropFirst())
                object[first] = child
            }
            self = .object(object)
        }
    }

    /// Merges an applied configuration into a live value: objects field by field, list maps item by item (by key),
    /// sets by union, everything else replaced.
    func mergingApplied(_ overlay: JSONValue, path: [String] = [], lists: ListTypes) -> JSONValue {
        switch (self, overlay) {
        case (.object(var object), .object(let patch)):
            for (key, value) in patch {
                object[key] = object[key].map { $0.mergingApplied(value, path: path + [key], lists: lists) } ?? value
            }
            return .object(object)
        case (.array(let items), .array(let patchItems)):
            let type = lists.type(at: path)
            switch type {
            case .atomic:
                return overlay
            case .set:
                var result = items
                for item in patchItems where !result.contains(item) { result.append(item) }
                return .array(result)
            case .map:
                var result = items
                for item in patchItems {
                    guard let component = FieldPath.component(for: item, in: type) else { return overlay }
                    if let index = result.firstIndex(where: { FieldPath.component(for: $0, in: type) == component }) {
                        result[index] = result[index].mergingApplied(item, path: path + [component], lists: lists)
                    } else {
                        result.append(item)
                    }
                }
                return .array(result)
            }
        default:
            return overlay
        }
    }
}
