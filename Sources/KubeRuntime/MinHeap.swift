// MinHeap.swift: a binary min-heap, for the work queue's delayed items.

/// A binary min-heap: the smallest element in O(1), insertion and removal of it in O(log n).
struct MinHeap<Element: Comparable> {
    private var storage: [Element] = []

    var count: Int { self.storage.count }
    var minimum: Element? { self.storage.first }

    mutating func insert(_ element: Element) {
        self.storage.append(element)
        var child = self.storage.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard self.storage[child] < self.storage[parent] else { break }
            self.storage.swapAt(child, parent)
            child = parent
        }
    }

    @discardableResult
    mutating func removeMinimum() -> Element? {
        guard !self.storage.isEmpty else { return nil }
        self.storage.swapAt(0, self.storage.count - 1)
        let minimum = self.storage.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < self.storage.count, self.storage[left] < self.storage[smallest] { smallest = left }
            if right < self.storage.count, self.storage[right] < self.storage[smallest] { smallest = right }
            guard smallest != parent else { break }
            self.storage.swapAt(parent, smallest)
            parent = smallest
        }
        return minimum
    }
}
