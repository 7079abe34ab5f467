// RowAllocator.swift: hands out contiguous ranges of the unwind_rows array (first fit) and takes them back,
// merging neighbours, so modules can come and go without moving anyone's rows.

/// First-fit allocation of contiguous row ranges in a fixed-size array.
struct RowAllocator: Sendable {
    /// Free ranges, sorted by start, never adjacent (merged on free).
    private(set) var free: [Range<UInt32>]
    let capacity: UInt32

    init(capacity: UInt32) {
        self.capacity = capacity
        self.free = capacity > 0 ? [0..<capacity] : []
    }

    /// Rows not allocated.
    var freeRows: UInt32 { self.free.reduce(0) { $0 + UInt32($1.count) } }

    /// The first free range of `count` rows, or nil when no free range is that long.
    mutating func allocate(_ count: UInt32) -> Range<UInt32>? {
        guard count > 0, let index = self.free.firstIndex(where: { UInt32($0.count) >= count }) else { return nil }
        let range = self.free[index]
        let allocated = range.lowerBound..<range.lowerBound + count
        if allocated.upperBound == range.upperBound {
            self.free.remove(at: index)
        } else {
            self.free[index] = allocated.upperBound..<range.upperBound
        }
        return allocated
    }

    /// Returns a range from ``allocate(_:)``.
    mutating func release(_ range: Range<UInt32>) {
        guard !range.isEmpty else { return }
        let index = self.free.firstIndex { $0.lowerBound > range.lowerBound } ?? self.free.count
        var merged = range
        var removeFrom = index
        var removeTo = index
        if index > 0, self.free[index - 1].upperBound == range.lowerBound {
            merged = self.free[index - 1].lowerBound..<merged.upperBound
            removeFrom = index - 1
        }
        if index < self.free.count, self.free[index].lowerBound == range.upperBound {
            merged = merged.lowerBound..<self.free[index].upperBound
            removeTo = index + 1
        }
        self.free.replaceSubrange(removeFrom..<removeTo, with: [merged])
    }
}
