// Resource.swift: the resource protocol, resource types (GVK + plural + scope) and dynamic objects.

/// A group/version/kind with its REST plural and scope.
public struct ResourceType: Sendable, Hashable, CustomStringConvertible {
    public var group: String
    public var version: String
    public var kind: String
    public var plural: String
    public var namespaced: Bool

    public init(group: String, version: String, kind: String, plural: String, namespaced: Bool) {
        self.group = group
        self.version = version
        self.kind = kind
        self.plural = plural
        self.namespaced = namespaced
    }

    /// `v1` for the core group, `group/version` otherwise.
    public var apiVersion: String { self.group.isEmpty ? self.version : "\(self.group)/\(self.version)" }

    /// `plural.group` or `plural` for the core group (used in error messages).
    public var qualifiedName: String { self.group.isEmpty ? self.plural : "\(self.plural).\(self.group)" }

    public var description: String { "\(self.apiVersion), Kind=\(self.kind)" }

    /// The REST path of a collection or an item.
    public func path(namespace: String? = nil, name: String? = nil, subresource: String? = nil) -> String {
        var path = self.group.isEmpty ? "/api/\(self.version)" : "/apis/\(self.group)/\(self.version)"
        if self.namespaced, let namespace { path += "/namespaces/\(namespace)" }
        path += "/\(self.plural)"
        if let name {
            path += "/\(name)"
            if let subresource { path += "/\(subresource)" }
        }
        return path
    }
}

/// A top-level Kubernetes object: it has metadata, a kind and an apiVersion, and a key. Stores, watchers and
/// controllers hold these; nested views (a pod template, a container) are plain ``JSONView``s.
public protocol KubeObject: JSONView {}

/// A Kubernetes object kind with a fixed resource type.
public protocol KubeResource: KubeObject {
    static var resourceType: ResourceType { get }
}

extension KubeObject {
    /// `metadata`.
    public var metadata: ObjectMeta {
        get { self.view("metadata") }
        set { self.object["metadata"] = newValue.json }
    }
    public var apiVersion: String? {
        get { self.get("apiVersion") }
        set { self.set("apiVersion", newValue) }
    }
    public var kind: String? {
        get { self.get("kind") }
        set { self.set("kind", newValue) }
    }
    /// The `namespace/name` key (just `name` for cluster-scoped objects).
    public var key: String { ObjectKey(namespace: self.metadata.namespace, name: self.metadata.name ?? "").description }
    /// The object's key.
    public var objectKey: ObjectKey { ObjectKey(namespace: self.metadata.namespace, name: self.metadata.name ?? "") }
}

extension KubeResource {
    /// A new object with apiVersion, kind, name and namespace set.
    public init(name: String, namespace: String? = nil) {
        self.init(object: [:])
        self.apiVersion = Self.resourceType.apiVersion
        self.kind = Self.resourceType.kind
        self.metadata = ObjectMeta(name: name, namespace: Self.resourceType.namespaced ? namespace : nil)
    }
}

/// An object of any kind (custom resources, or kinds this module does not model).
public struct DynamicObject: KubeResource {
    public static let resourceType = ResourceType(group: "", version: "v1", kind: "", plural: "", namespaced: true)
    public var object: JSONObject
    public init(object: JSONObject) { self.object = object }

    /// A new object of the given type.
    public init(_ type: ResourceType, name: String, namespace: String? = nil) {
        self.object = [:]
        self.apiVersion = type.apiVersion
        self.kind = type.kind
        self.metadata = ObjectMeta(name: name, namespace: type.namespaced ? namespace : nil)
    }

    public var spec: JSONValue? {
        get { self.get("spec") }
        set { self.set("spec", newValue) }
    }
    public var status: JSONValue? {
        get { self.get("status") }
        set { self.set("status", newValue) }
    }
}

/// A reference to an object by namespace and name, the key of stores and work queues.
public struct ObjectKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var namespace: String?
    public var name: String

    public init(namespace: String?, name: String) {
        self.namespace = (namespace?.isEmpty ?? true) ? nil : namespace
        self.name = name
    }

    /// Parses `namespace/name` or `name`.
    public init(_ string: String) {
        if let slash = string.firstIndex(of: "/") {
            self.init(namespace: String(string[..<slash]), name: String(string[string.index(after: slash)...]))
        } else {
            self.init(namespace: nil, name: string)
        }
    }

    public var description: String { self.namespace.map { "\($0)/\(self.name)" } ?? self.name }

    public static func < (lhs: ObjectKey, rhs: ObjectKey) -> Bool {
        (lhs.namespace ?? "", lhs.name) < (rhs.namespace ?? "", rhs.name)
    }
}

/// A typed list (`FooList`).
public struct ObjectList<Item: JSONView>: JSONView {
    public var object: JSONObject
    public init(object: JSONObject) { self.object = object }

    public var metadata: ListMeta {
        get { self.view("metadata") }
        set { self.object["metadata"] = newValue.json }
    }
    public var items: [Item] {
        get { self.get("items") ?? [] }
        set { self.set("items", newValue) }
    }
}

/// A watch event type (open set).
public struct WatchEventType: Sendable, Hashable, RawRepresentable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public static let added = Self(rawValue: "ADDED")
    public static let modified = Self(rawValue: "MODIFIED")
    public static let deleted = Self(rawValue: "DELETED")
    public static let bookmark = Self(rawValue: "BOOKMARK")
    public static let error = Self(rawValue: "ERROR")
    public var description: String { self.rawValue }
}

/// One line of a watch stream: `{"type": ..., "object": ...}`.
public struct WatchEvent<Object: KubeObject>: Sendable, Hashable {
    public var type: WatchEventType
    /// The raw object (a ``Status`` for ERROR events).
    public var raw: JSONObject

    public init(type: WatchEventType, raw: JSONObject) {
        self.type = type
        self.raw = raw
    }

    public init(type: WatchEventType, object: Object) {
        self.init(type: type, raw: object.object)
    }

    /// The object of ADDED/MODIFIED/DELETED/BOOKMARK events.
    public var object: Object { Object(object: self.raw) }

    /// The Status of an ERROR event.
    public var status: Status? { self.type == .error ? Status(object: self.raw) : nil }

    /// Decodes one watch line.
    public init(line: JSONValue) throws {
        guard case .object(let event) = line, let type = event["type"]?.stringValue,
            case .object(let raw)? = event["object"]
        else {
            throw KubeModelError(code: .invalidWatchEvent, message: "not a watch event: \(line)")
        }
        self.init(type: WatchEventType(rawValue: type), raw: raw)
    }

    public var json: JSONValue { .object(["type": .string(self.type.rawValue), "object": .object(self.raw)]) }
}

/// An error in this module.
public struct KubeModelError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum _Code: String { case invalidWatchEvent, invalidSelector }
        private let code: _Code
        public static let invalidWatchEvent = Code(code: .invalidWatchEvent)
        public static let invalidSelector = Code(code: .invalidSelector)
        public var description: String { self.code.rawValue }
    }
    public var code: Code
    public var message: String
    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { "\(self.code): \(self.message)" }
}
