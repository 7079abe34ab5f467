// Store.swift: the watcher's in-memory cache, with secondary indexes.

import KubeModel
import Synchronization

/// A thread-safe cache of objects keyed by namespace/name, fed by a ``Watcher``.
public final class Store<Object: JSONView>: Sendable {
    /// An index function: the index values of an object (e.g. its owner's uid, a referenced Secret name).
    public typealias IndexFunction = @Sendable (Object) -> [String]

    struct State {
        var objects: [ObjectKey: Object] = [:]
        var indexes: [String: [String: Set<ObjectKey>]] = [:]
        var relist: [ObjectKey: Object]?
        var synced = false
    }

    let indexers: [String: IndexFunction]
    let transform: @Sendable (Object) -> Object
    let state = Mutex(State())

    /// - Parameter transform: applied to each object before it is stored, to keep only what readers need
    ///   (e.g. ``stripManagedFields``); the identity by default.
    public init(
        indexers: [String: IndexFunction] = [:],
        transform: @escaping @Sendable (Object) -> Object = { $0 }
    ) {
        self.indexers = indexers
        self.transform = transform
    }

    /// Drops `metadata.managedFields`: server-side apply bookkeeping that a controller reading from its cache
    /// never needs, and often half of a small object (controller-runtime's TransformStripManagedFields).
    public static var stripManagedFields: @Sendable (Object) -> Object {
        { object in
            guard object.metadata.managedFields != nil else { return object }
            var stripped = object
            stripped.metadata.managedFields = nil
            return stripped
        }
    }

    /// Applies a watcher event. A relist (initStarted … initDone) replaces the contents atomically.
    public func apply(_ event: WatcherEvent<Object>) {
        self.state.withLock { state in
            switch event {
            case .initStarted:
                state.relist = [:]
            case .initApply(let received):
                let object = self.transform(received)
                state.relist?[ObjectKey(namespace: object.metadata.namespace, name: object.metadata.name ?? "")] =
                    object
            case .initDone:
                let objects = state.relist ?? [:]
                state.relist = nil
                state.objects = objects
                state.indexes = [:]
                for (key, object) in objects { self.index(&state, key, object, add: true) }
                state.synced = true
            case .apply(let received):
                let object = self.transform(received)
                let key = ObjectKey(namespace: object.metadata.namespace, name: object.metadata.name ?? "")
                if let old = state.objects[key] { self.index(&state, key, old, add: false) }
                state.objects[key] = object
                self.index(&state, key, object, add: true)
            case .delete(let object):
                let key = ObjectKey(namespace: object.metadata.namespace, name: object.metadata.name ?? "")
                if let old = state.objects.removeValue(forKey: key) { self.index(&state, key, old, add: false) }
            }
        }
    }

    private func index(_ state: inout State, _ key: ObjectKey, _ object: Object, add: Bool) {
        for (name, function) in self.indexers {
            for value in function(object) {
                if add {
                    state.indexes[name, default: [:]][value, default: []].insert(key)
                } else {
                    state.indexes[name]?[value]?.remove(key)
                    if state.indexes[name]?[value]?.isEmpty == true { state.indexes[name]?.removeValue(forKey: value) }
                }
            }
        }
    }

    /// Whether a complete list has been applied.
    public var hasSynced: Bool { self.state.withLock { $0.synced } }

    public func get(_ key: ObjectKey) -> Object? { self.state.withLock { $0.objects[key] } }

    public func get(namespace: String?, name: String) -> Object? {
        self.get(ObjectKey(namespace: namespace, name: name))
    }

    /// Every object, sorted by key.
    public var all: [Object] { self.state.withLock { $0.objects.sorted { $0.key < $1.key }.map(\.value) } }

    public var keys: [ObjectKey] { self.state.withLock { $0.objects.keys.sorted() } }

    public var count: Int { self.state.withLock { $0.objects.count } }

    /// Objects whose index `name` contains `value`.
    public func byIndex(_ name: String, _ value: String) -> [Object] {
        self.state.withLock { state in
            (state.indexes[name]?[value] ?? []).sorted().compactMap { state.objects[$0] }
        }
    }

    /// Objects matching a label selector, optionally in one namespace.
    public func list(namespace: String? = nil, selector: LabelSelector? = nil) -> [Object] {
        self.all.filter { object in
            (namespace == nil || object.metadata.namespace == namespace)
                && (selector?.matches(object.metadata.labels) ?? true)
        }
    }
}

/// Ready-made index functions.
public enum StoreIndex {
    /// The uids of an object's owners.
    public static func ownerUID<Object: JSONView>() -> @Sendable (Object) -> [String] {
        { object in (object.metadata.ownerReferences ?? []).compactMap(\.uid) }
    }

    /// The object's namespace.
    public static func namespace<Object: JSONView>() -> @Sendable (Object) -> [String] {
        { object in object.metadata.namespace.map { [$0] } ?? [] }
    }
}
