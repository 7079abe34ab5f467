// SortedSearch.swift: the one binary search the symbolizer needs: in a table sorted by start address, the last
// entry that starts at or below an address (mappings, ELF symbols, kernel symbols).

extension RandomAccessCollection where Index == Int {
    /// The index of the last element whose key is at most `value`, or nil when every key is above it. The
    /// elements must be sorted by `key`.
    package func lastIndex<Key: Comparable>(atMost value: Key, by key: (Element) -> Key) -> Int? {
        var low = self.startIndex
        var high = self.endIndex
        while low < high {
            let middle = low + (high - low) / 2
            if key(self[middle]) <= value {
                low = middle + 1
            } else {
                high = middle
            }
        }
        return low > self.startIndex ? low - 1 : nil
    }
}
