// StackReader.swift: reads the stacks a drained stack map holds, each at most once, then empties the map.

internal import CLibbpf
import Foundation
import HearthBPF
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Reads stacks of one drained stack map (each at most once), then empties the map.
struct StackReader {
    let fd: Int32
    private var cache: [Int32: [UInt64]] = [:]
    private(set) var missing: UInt64 = 0
    private var buffer = [UInt64](repeating: 0, count: Int(HEARTH_MAX_STACK_DEPTH))

    init(fd: Int32) {
        self.fd = fd
    }

    /// The addresses of stack `id`, leaf first; empty for a negative id (no stack, or a loss already counted).
    mutating func stack(id: Int32) -> [UInt64] {
        guard id >= 0 else { return [] }
        if let cached = self.cache[id] { return cached }
        var key = UInt32(id)
        var addresses: [UInt64] = []
        if bpf_map_lookup_elem(self.fd, &key, &self.buffer) == 0 {
            addresses = Array(self.buffer.prefix(while: { $0 != 0 }))
        } else {
            self.missing += 1
        }
        self.cache[id] = addresses
        return addresses
    }

    /// Deletes every stack read, then anything left over (stacks of samples lost to a full counts map).
    mutating func clear() throws(BPFError) {
        try emptyStackMap(self.fd, read: self.cache.keys, name: "stack map")
    }
}

/// Empties a stack map keyed by 32-bit stack id: the ids already read first (one delete each, no walk), then
/// whatever the walk still finds.
func emptyStackMap(_ fd: Int32, read ids: some Sequence<Int32>, name: String) throws(BPFError) {
    for id in ids {
        var key = UInt32(id)
        _ = bpf_map_delete_elem(fd, &key)
    }
    var key: UInt32 = 0
    while bpf_map_get_next_key(fd, nil, &key) == 0 {
        let status = bpf_map_delete_elem(fd, &key)
        if status != 0 {
            throw BPFError(code: .mapOperation, message: "clear the \(name)", errno: -status)
        }
    }
}

/// The online CPUs, from /sys/devices/system/cpu/online ("0-3,5").
enum OnlineCPUs {
    static func read(path: String = "/sys/devices/system/cpu/online") -> [Int] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            return Array(0..<Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        }
        return parse(text)
    }

    static func parse(_ text: String) -> [Int] {
        var cpus: [Int] = []
        for part in text.split(whereSeparator: { $0 == "," || $0.isWhitespace }) {
            let bounds = part.split(separator: "-").compactMap { Int($0) }
            if bounds.count == 2, bounds[0] <= bounds[1] {
                cpus.append(contentsOf: bounds[0]...bounds[1])
            } else if bounds.count == 1 {
                cpus.append(bounds[0])
            }
        }
        return cpus
    }
}
