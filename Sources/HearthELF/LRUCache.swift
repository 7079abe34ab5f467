// LRUCache.swift: the bounded least-recently-used cache behind the symbolizer's caches: bounded by entry count and
// optionally by total cost, O(1) operations over an array threaded by a doubly linked recency list.

/// A bounded least-recently-used cache: O(1) lookup, insert and eviction.
///
/// Bounded by a number of entries and, optionally, by a total cost (bytes, for the symbolizer): inserting
/// evicts least recently used entries until both bounds hold, and an entry costing more than the whole
/// budget is not stored at all.
///
/// Entries live in an array threaded by a doubly linked recency list of indices; freed slots are reused.
/// Not thread-safe: the ``Symbolizer`` keeps it inside its `Mutex`.
package struct LRUCache<Key: Hashable, Value> {
    fileprivate struct Node {
        var key: Key
        var value: Value?
        var cost: Int
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
    package let capacity: Int
    /// The largest total cost of the entries kept.
    package let maximumCost: Int
    /// The total cost of the entries kept; never above ``maximumCost``.
    package private(set) var totalCost = 0

    package init(capacity: Int, maximumCost: Int = .max) {
        self.capacity = max(1, capacity)
        self.maximumCost = max(0, maximumCost)
    }

    package var count: Int { self.indexByKey.count }

    /// The value for `key`, marking it most recently used.
    package mutating func get(_ key: Key) -> Value? {
        guard let index = self.indexByKey[key] else {
            return nil
        }
        self.moveToFront(index)
        return self.nodes[index].value
    }

    /// Whether `key` is cached, without changing recency.
    package func contains(_ key: Key) -> Bool {
        self.indexByKey[key] != nil
    }

    /// Inserts or replaces the value for `key`, evicting least recently used entries until the count and
    /// the total cost fit. A value costing more than ``maximumCost`` is not stored (and replaces nothing).
    /// - Returns: The first evicted key and value, if any.
    @discardableResult
    package mutating func set(_ key: Key, _ value: Value, cost: Int = 0) -> (Key, Value)? {
        let cost = max(0, cost)
        guard cost <= self.maximumCost else {
            self.remove(key)
            return nil
        }
        if let index = self.indexByKey[key] {
            if cost <= self.nodes[index].cost {
                self.totalCost -= self.nodes[index].cost - cost
                self.nodes[index].value = value
                self.nodes[index].cost = cost
                self.moveToFront(index)
                return nil
            }
            self.removeNode(index)
        }
        var evicted: (Key, Value)?
        while self.tail >= 0,
            self.indexByKey.count >= self.capacity || self.totalCost > self.maximumCost - cost
        {
            let victim = self.tail
            let victimKey = self.nodes[victim].key
            if let victimValue = self.removeNode(victim), evicted == nil {
                evicted = (victimKey, victimValue)
            }
        }
        self.totalCost += cost
        let node = Node(key: key, value: value, cost: cost, previous: -1, next: self.head)
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
    package mutating func remove(_ key: Key) -> Value? {
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

    @discardableResult
    private mutating func removeNode(_ index: Int) -> Value? {
        self.unlink(index)
        let value = self.nodes[index].value
        self.nodes[index].value = nil
        self.totalCost -= self.nodes[index].cost
        self.nodes[index].cost = 0
        self.indexByKey[self.nodes[index].key] = nil
        self.freeList.append(index)
        return value
    }
}

extension LRUCache: Sendable where Key: Sendable, Value: Sendable {}
extension LRUCache.Node: Sendable where Key: Sendable, Value: Sendable {}
