//===----------------------------------------------------------------------===//
// Hearth — continuous profiling for Kubernetes. HearthSymbolizer module.
//===----------------------------------------------------------------------===//

/// A bounded least-recently-used cache: O(1) lookup, insert and eviction.
///
/// Entries live in an array threaded by a doubly linked recency list of indices; freed slots are reused.
/// Not thread-safe: the ``Symbolizer`` keeps it inside its `Mutex`.
struct LRUCache<Key: Hashable, Value> {
    private struct Node {
        var key: Key
        var value: Value?
        var previous: Int
        var next: Int
    }

    private var nodes: [Node] = []
    private var indexByKey: [Key: Int] = [:]
    private var freeList: [Int] = []
    /// Most recently used.
    private var head = -1
    /// Least recently used.
    private var tail = -1

    /// The largest number of entries kept.
    let capacity: Int

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    var count: Int { self.indexByKey.count }

    /// The value for `key`, marking it most recently used.
    mutating func get(_ key: Key) -> Value? {
        guard let index = self.indexByKey[key] else {
            return nil
        }
        self.moveToFront(index)
        return self.nodes[index].value
    }

    /// Whether `key` is cached, without changing recency.
    func contains(_ key: Key) -> Bool {
        self.indexByKey[key] != nil
    }

    /// Inserts or replaces the value for `key`, evicting the least recently used entry when full.
    /// - Returns: The evicted key and value, if any.
    @discardableResult
    mutating func set(_ key: Key, _ value: Value) -> (Key, Value)? {
        if let index = self.indexByKey[key] {
            self.nodes[index].value = value
            self.moveToFront(index)
            return nil
        }
        var evicted: (Key, Value)?
        if self.indexByKey.count >= self.capacity, self.tail >= 0 {
            let victim = self.tail
            let victimKey = self.nodes[victim].key
            if let victimValue = self.removeNode(victim) {
                evicted = (victimKey, victimValue)
            }
        }
        let node = Node(key: key, value: value, previous: -1, next: self.head)
        let index: Int
        if let free = self.freeList.popLast() {
            index = free
            self.nodes[index] = node
        } else {
            index = self.nodes.count
            self.nodes.append(node)
        }
        if self.head >= 0 {
            self.nodes[self.head].previous = index
        }
        self.head = index
        if self.tail < 0 {
            self.tail = index
        }
        self.indexByKey[key] = index
        return evicted
    }

    /// Removes the value for `key`.
    @discardableResult
    mutating func remove(_ key: Key) -> Value? {
        guard let index = self.indexByKey[key] else {
            return nil
        }
        return self.removeNode(index)
    }

    private mutating func unlink(_ index: Int) {
        let previous = self.nodes[index].previous
        let next = self.nodes[index].next
        if previous >= 0 {
            self.nodes[previous].next = next
        } else {
            self.head = next
        }
        if next >= 0 {
            self.nodes[next].previous = previous
        } else {
            self.tail = previous
        }
    }

    private mutating func moveToFront(_ index: Int) {
        guard self.head != index else {
            return
        }
        self.unlink(index)
        self.nodes[index].previous = -1
        self.nodes[index].next = self.head
        if self.head >= 0 {
            self.nodes[self.head].previous = index
        }
        self.head = index
        if self.tail < 0 {
            self.tail = index
        }
    }

    private mutating func removeNode(_ index: Int) -> Value? {
        self.unlink(index)
        let value = self.nodes[index].value
        self.nodes[index].value = nil
        self.indexByKey[self.nodes[index].key] = nil
        self.freeList.append(index)
        return value
    }
}
