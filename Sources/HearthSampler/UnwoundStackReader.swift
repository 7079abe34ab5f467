// UnwoundStackReader.swift: reads the stacks the .eh_frame unwinder stored in one drained unwound_N map (each at
// most once), then empties the map.

internal import CLibbpf

/// Reads stacks of one drained unwound-stack map, then empties it.
struct UnwoundStackReader {
    let fd: Int32
    private var cache: [Int32: [UInt64]] = [:]
    private(set) var missing: UInt64 = 0
    private var buffer = hearth_unwound_stack()

    init(fd: Int32) {
        self.fd = fd
    }

    /// The frames of stack `id`, leaf first, ending in a marker frame when the walk was cut short; empty for a
    /// negative id (a loss already counted).
    mutating func stack(id: Int32) -> [UInt64] {
        guard id >= 0 else { return [] }
        if let cached = self.cache[id] { return cached }
        var key = UInt32(id)
        var frames: [UInt64] = []
        if bpf_map_lookup_elem(self.fd, &key, &self.buffer) == 0 {
            let length = min(Int(self.buffer.length), Int(HEARTH_UNWIND_STACK_SLOTS))
            frames = withUnsafeBytes(of: &self.buffer.frames) { raw in
                Array(raw.bindMemory(to: UInt64.self).prefix(length))
            }
        } else {
            self.missing += 1
        }
        self.cache[id] = frames
        return frames
    }

    /// Deletes every stack in the map.
    mutating func clear() throws(BPFError) {
        try emptyStackMap(self.fd, read: self.cache.keys, name: "unwound stack map")
    }
}
