// Store.swift: the watcher's in-memory cache, with secondary indexes.

import Foundation
import KubeModel
import Synchronization

/// A thread-safe cache of objects keyed by namespace/name, fed by a ``Watcher``.
///
/// Objects are kept as JSON trees by default. With ``Representation/compactJSON`` each is kept as its compact
/// serialized bytes and parsed again when read: a parsed tree of small dictionaries costs 4-5 times the object's
/// JSON size, so a cache of thousands of objects read a few at a time is several times smaller that way.
public final class Store<Object: KubeObject>: Sendable {
    /// An index function: the index values of an object (e.g. its owner's uid, a referenced Secret name).
    public typealias IndexFunction = @Sendable (Object) -> [String]

    /// How objects are held.
    public enum Representation: Sendable {
        /// Parsed trees: fastest reads.
        case tree
        /// Compact JSON bytes, parsed on each read: the smallest.
        case compactJSON
    }

    struct Entry: Sendable {
        var tree: Object?
        var bytes: [UInt8]
    }

    /// Index name → index value → keys.
    typealias Indexes = [String: [String: Set<ObjectKey>]]

    struct State {
        var objects: [ObjectKey: Entry] = [:]
        var indexes: Indexes = [:]
        /// A relist in progress: its objects and their indexes, built as items arrive (while each is parsed).
        var relist: (objects: [ObjectKey: Entry], indexes: Indexes)?
        var synced = false
        /// Callers of ``Store/waitUntilSynced()`` until the first list completes.
        var syncWaiters: [UUID: CheckedContinuation<Void, Never>] = [:]
    }

    let indexers: [String: IndexFunction]
    let transform: @Sendable (Object) -> Object
    let representation: Representation
    let state = Mutex(State())

    /// - Parameters:
    ///   - transform: applied to each object before it is stored, to keep only what readers need
    ///     (e.g. ``stripManagedFields``); the identity by default.
    ///   - representation: parsed trees (default) or compact JSON.
    public init(
        indexers: [String: IndexFunction] = [:],
        transform: @escaping @Sendable (Object) -> Object = { $0 },
        representation: Representation = .tree
    ) {
        self.indexers = indexers
        self.transform = transform
        self.representation = representation
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

    func entry(for received: Object) -> (key: ObjectKey, entry: Entry, object: Object) {
        let object = self.transform(received)
        let key = ObjectKey(namespace: object.metadata.namespace, name: object.metadata.name ?? "")
        switch self.representation {
        case .tree:
            return (key, Entry(tree: object, bytes: []), object)
        case .compactJSON:
            let serialized = JSONValue.object(object.object).serialized()
            // A copy of exactly the right size: the serializer's buffer has grown by doubling.
            let bytes = [UInt8](unsafeUninitializedCapacity: serialized.count) { buffer, count in
                count = buffer.initialize(from: serialized).1
            }
            return (key, Entry(tree: nil, bytes: bytes), object)
        }
    }

    func load(_ entry: Entry) -> Object {
        if let tree = entry.tree { return tree }
        // Bytes this store serialized itself: parsing them cannot fail.
        return (try? JSONValue.parse(entry.bytes)).flatMap(Object.init(json:)) ?? Object()
    }

    /// Applies a watcher event. A relist (initStarted … initDone) replaces the contents atomically.
    public func apply(_ event: WatcherEvent<Object>) {
        // Transform, index and serialize outside the lock.
        var prepared: (key: ObjectKey, entry: Entry, object: Object)?
        switch event {
        case .initApply(let object), .apply(let object): prepared = self.entry(for: object)
        case .initStarted, .initDone, .delete: prepared = nil
        }
        var synced: [CheckedContinuation<Void, Never>] = []
        self.state.withLock { state in
            switch event {
            case .initStarted:
                state.relist = ([:], [:])
            case .initApply:
                guard let (key, entry, object) = prepared, var relist = state.relist else { return }
                state.relist = nil  // keep the relist uniquely referenced while it grows
                self.replace(key, with: (entry, object), in: &relist.objects, indexes: &relist.indexes)
                state.relist = relist
            case .initDone:
                let relist = state.relist ?? ([:], [:])
                state.relist = nil
                state.objects = relist.objects
                state.indexes = relist.indexes
                state.synced = true
                synced = Array(state.syncWaiters.values)
                state.syncWaiters = [:]
            case .apply:
                guard let (key, entry, object) = prepared else { return }
                self.replace(key, with: (entry, object), in: &state.objects, indexes: &state.indexes)
            case .delete(let object):
                let key = ObjectKey(namespace: object.metadata.namespace, name: object.metadata.name ?? "")
                self.replace(key, with: nil, in: &state.objects, indexes: &state.indexes)
            }
        }
        for waiter in synced { waiter.resume() }
    }

    /// Stores (or, with nil, removes) the object at `key`, moving it between index values. The new object's index
    /// values come from the object at hand; the old one's are recomputed from it (parsed again when compact).
    private func replace(
        _ key: ObjectKey,
        with new: (entry: Entry, object: Object)?,
        in objects: inout [ObjectKey: Entry],
        indexes: inout Indexes
    ) {
        let old: Entry?
        if let new {
            old = objects.updateValue(new.entry, forKey: key)
        } else {
            old = objects.removeValue(forKey: key)
        }
        if let old, !self.indexers.isEmpty { self.index(&indexes, key, self.load(old), add: false) }
        if let new { self.index(&indexes, key, new.object, add: true) }
    }

    private func index(_ indexes: inout Indexes, _ key: ObjectKey, _ object: Object, add: Bool) {
        for (name, function) in self.indexers {
            for value in function(object) {
                if add {
                    indexes[name, default: [:]][value, default: []].insert(key)
                } else {
                    indexes[name]?[value]?.remove(key)
                    if indexes[name]?[value]?.isEmpty == true { indexes[name]?.removeValue(forKey: value) }
                }
            }
        }
    }

    /// Whether a complete list has been applied.
    public var hasSynced: Bool { self.state.withLock { $0.synced } }

    /// Returns once the first list has completed (controller-runtime's `WaitForCacheSync`), or the task is
    /// cancelled.
    public func waitUntilSynced() async {
        let id = UUID()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = self.state.withLock { state -> Bool in
                    if state.synced || Task.isCancelled { return true }
                    state.syncWaiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            self.state.withLock { $0.syncWaiters.removeValue(forKey: id) }?.resume()
        }
    }

    public func get(_ key: ObjectKey) -> Object? {
        self.state.withLock { $0.objects[key] }.map(self.load)
    }

    public func get(namespace: String?, name: String) -> Object? {
        self.get(ObjectKey(namespace: namespace, name: name))
    }

    /// Every object, sorted by key.
    public var all: [Object] { self.map { $0 } }

    /// `transform` applied to every object, in key order, one object read at a time: with compact JSON, only
    /// one parsed tree is alive at once (``all`` parses every object before returning).
    public func map<T>(_ transform: (Object) throws -> T) rethrows -> [T] {
        let entries = self.state.withLock { $0.objects.sorted { $0.key < $1.key }.map(\.value) }
        return try entries.map { try transform(self.load($0)) }
    }

    public var keys: [ObjectKey] { self.state.withLock { $0.objects.keys.sorted() } }

    public var count: Int { self.state.withLock { $0.objects.count } }

    /// Objects whose index `name` contains `value`.
    /// How many objects an index value holds, without reading them.
    public func count(byIndex name: String, _ value: String) -> Int {
        self.state.withLock { $0.indexes[name]?[value]?.count ?? 0 }
    }

    public func byIndex(_ name: String, _ value: String) -> [Object] {
        self.state.withLock { state in
            (state.indexes[name]?[value] ?? []).sorted().compactMap { state.objects[$0] }
        }.map(self.load)
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
    public static func ownerUID<Object: KubeObject>() -> @Sendable (Object) -> [String] {
        { object in (object.metadata.ownerReferences ?? []).compactMap(\.uid) }
    }

    /// The object's namespace.
    public static func namespace<Object: KubeObject>() -> @Sendable (Object) -> [String] {
        { object in object.metadata.namespace.map { [$0] } ?? [] }
    }
}
