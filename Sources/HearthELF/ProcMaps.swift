// ProcMaps.swift: `/proc/PID/maps` parsed into mappings (deleted files, spaces in paths, the vDSO, anonymous
// memory), the mapping holding an address, and reading whole procfs files and another process's memory.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One line of `/proc/PID/maps`.
package struct MemoryMapping: Hashable, Sendable {
    package var start: UInt64
    package var end: UInt64
    package var isReadable: Bool
    package var isWritable: Bool
    package var isExecutable: Bool
    package var fileOffset: UInt64
    package var deviceMajor: UInt32
    package var deviceMinor: UInt32
    package var inode: UInt64
    /// The path as the kernel prints it, without a trailing " (deleted)".
    package var path: String
    /// Whether the kernel marked the file " (deleted)" (unlinked, or replaced by an upgrade).
    package var isDeleted: Bool

    package enum Kind: Equatable {
        /// A regular file, opened through `/proc/PID/root` (or `/proc/PID/map_files` when deleted).
        case file
        /// The kernel's virtual dynamic shared object, an ELF image readable from `/proc/PID/mem`.
        case vdso
        /// Anonymous memory (no path): JIT code, or an unnamed mapping.
        case anonymous
        /// Any other pseudo-path: `[heap]`, `[stack]`, `[vsyscall]`, `memfd:…`, `/dev/…` without an inode.
        case special
    }

    package var kind: Kind {
        if self.path.isEmpty {
            return .anonymous
        }
        if self.path == "[vdso]" {
            return .vdso
        }
        if self.path.hasPrefix("/"), self.inode != 0 {
            return .file
        }
        return .special
    }

    /// Whether this is anonymous memory, where JIT compilers put code: no path, or a name given with
    /// `prctl(PR_SET_VMA_ANON_NAME)` (`[anon:…]`).
    package var isAnonymousMemory: Bool {
        self.path.isEmpty || self.path.hasPrefix("[anon:")
    }

    /// `/proc/PID/map_files/START-END`: the very file mapped (deleted, or in another mount namespace).
    package func mapFilesPath(procRoot: String, pid: Int32) -> String {
        "\(procRoot)/\(pid)/map_files/\(String(self.start, radix: 16))-\(String(self.end, radix: 16))"
    }

    /// The mapped file's device as `stat` reports it (`st_dev`, glibc's encoding of major and minor): a stall on it
    /// is remembered before the file is opened again.
    package var device: UInt64 {
        let major = UInt64(self.deviceMajor)
        let minor = UInt64(self.deviceMinor)
        return (major & 0xfff) << 8 | (major & ~0xfff) << 32 | minor & 0xff | (minor & ~0xff) << 12
    }

    /// The module name reported for frames in this mapping.
    package var moduleName: String {
        self.path.isEmpty ? "[anon]" : self.path
    }
}

package enum ProcMaps {
    /// Parses the text of `/proc/PID/maps`. Malformed lines are skipped.
    package static func parse(_ text: [UInt8]) -> [MemoryMapping] {
        var mappings: [MemoryMapping] = []
        var lineStart = 0
        while lineStart < text.count {
            let lineEnd = text[lineStart...].firstIndex(of: 0x0a) ?? text.count
            if let mapping = Self.parseLine(text[lineStart..<lineEnd]) {
                mappings.append(mapping)
            }
            lineStart = lineEnd + 1
        }
        mappings.sort { $0.start < $1.start }
        return mappings
    }

    /// `start-end perms offset major:minor inode [path]`; the path may contain spaces.
    package static func parseLine(_ line: ArraySlice<UInt8>) -> MemoryMapping? {
        var index = line.startIndex
        func field() -> ArraySlice<UInt8>? {
            while index < line.endIndex, line[index] == 0x20 {
                index += 1
            }
            let start = index
            while index < line.endIndex, line[index] != 0x20 {
                index += 1
            }
            return start < index ? line[start..<index] : nil
        }
        guard let range = field(), let perms = field(), let offset = field(), let device = field(),
            let inode = field()
        else {
            return nil
        }
        guard let dash = range.firstIndex(of: UInt8(ascii: "-")),
            let start = hexValue(range[range.startIndex..<dash]),
            let end = hexValue(range[(dash + 1)...]),
            start < end,
            let fileOffset = hexValue(offset),
            let colon = device.firstIndex(of: UInt8(ascii: ":")),
            let major = hexValue(device[device.startIndex..<colon]).flatMap({ UInt32(exactly: $0) }),
            let minor = hexValue(device[(colon + 1)...]).flatMap({ UInt32(exactly: $0) }),
            let inodeNumber = UInt64(String(decoding: inode, as: UTF8.self)),
            perms.count >= 3
        else {
            return nil
        }
        while index < line.endIndex, line[index] == 0x20 {
            index += 1
        }
        var path = String(decoding: line[index...], as: UTF8.self)
        var isDeleted = false
        if path.hasSuffix(" (deleted)") {
            path.removeLast(" (deleted)".count)
            isDeleted = true
        }
        let p = Array(perms)
        return MemoryMapping(
            start: start,
            end: end,
            isReadable: p[0] == UInt8(ascii: "r"),
            isWritable: p[1] == UInt8(ascii: "w"),
            isExecutable: p[2] == UInt8(ascii: "x"),
            fileOffset: fileOffset,
            deviceMajor: major,
            deviceMinor: minor,
            inode: inodeNumber,
            path: path,
            isDeleted: isDeleted
        )
    }

    /// Hex digits (either case, at most 16, no prefix) as a number; nil for anything else. Perf maps use it too.
    package static func hexValue(_ digits: ArraySlice<UInt8>) -> UInt64? {
        guard !digits.isEmpty, digits.count <= 16 else {
            return nil
        }
        var value: UInt64 = 0
        for digit in digits {
            let nibble: UInt8
            switch digit {
            case 0x30...0x39: nibble = digit - 0x30
            case 0x61...0x66: nibble = digit - 0x61 + 10
            case 0x41...0x46: nibble = digit - 0x41 + 10
            default: return nil
            }
            value = value << 4 | UInt64(nibble)
        }
        return value
    }

    /// Reads `/proc/PID/maps` (or any maps text at `path`) as a stream, keeping the mappings `keep` accepts: at most
    /// `maximumMappings` of them from at most `maximumBytes` of text, so a process with 60,000 mappings costs the
    /// caller its limits, not its size. Returns them sorted by start, and whether a limit cut the list short.
    package static func read(
        path: String,
        maximumBytes: Int = 16 << 20,
        maximumMappings: Int = 8192,
        keep: (MemoryMapping) -> Bool = { _ in true }
    ) throws(ELFError) -> (mappings: [MemoryMapping], truncated: Bool) {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        if fd < 0 {
            throw ELFError(
                code: .io,
                message: "cannot open \(path)",
                cause: SystemError(function: "open", errno: errno)
            )
        }
        defer { close(fd) }
        var mappings: [MemoryMapping] = []
        var truncated = false
        var pending: [UInt8] = []
        var total = 0
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        reading: while true {
            let wanted = min(chunk.count, maximumBytes - total)
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, wanted) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ELFError(
                    code: .io,
                    message: "reading \(path)",
                    cause: SystemError(function: "read", errno: errno)
                )
            }
            if n == 0 { break }
            total += n
            pending.append(contentsOf: chunk[0..<n])
            var lineStart = 0
            while let newline = pending[lineStart...].firstIndex(of: 0x0a) {
                if let mapping = Self.parseLine(pending[lineStart..<newline]), keep(mapping) {
                    guard mappings.count < maximumMappings else {
                        truncated = true
                        break reading
                    }
                    mappings.append(mapping)
                }
                lineStart = newline + 1
            }
            pending.removeFirst(lineStart)
            // A line longer than any the kernel writes (a path is at most PATH_MAX) is not a maps file.
            if pending.count > 2 * Int(PATH_MAX) {
                truncated = true
                break
            }
            if total >= maximumBytes {
                // At the limit: truncated only if the text goes on.
                var probe: UInt8 = 0
                truncated = Glibc.read(fd, &probe, 1) > 0
                break
            }
        }
        if !truncated, let mapping = Self.parseLine(pending[...]), keep(mapping) {
            if mappings.count < maximumMappings {
                mappings.append(mapping)
            } else {
                truncated = true
            }
        }
        mappings.sort { $0.start < $1.start }
        return (mappings, truncated)
    }

    /// The index of the mapping containing `address` in `mappings` (sorted by start).
    package static func index(of address: UInt64, in mappings: [MemoryMapping]) -> Int? {
        guard let candidate = mappings.lastIndex(atMost: address, by: \.start), address < mappings[candidate].end
        else { return nil }
        return candidate
    }
}

/// Reads a whole file whose size `stat` doesn't report (procfs), up to `limit` bytes.
package func readWholeFile(_ path: String, limit: Int = 256 << 20) throws(ELFError) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 {
        throw ELFError(code: .io, message: "cannot open \(path)", cause: SystemError(function: "open", errno: errno))
    }
    defer { close(fd) }
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 << 10)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            throw ELFError(code: .io, message: "reading \(path)", cause: SystemError(function: "read", errno: errno))
        }
        if n == 0 {
            return result
        }
        result.append(contentsOf: chunk[0..<n])
        if result.count > limit {
            throw ELFError(code: .tooLarge, message: "\(path) is larger than \(limit) bytes")
        }
    }
}

/// Reads `count` bytes of another process's memory at `address` through `/proc/PID/mem`.
package func readProcessMemory(path: String, address: UInt64, count: Int) throws(ELFError) -> [UInt8] {
    guard let offset = off_t(exactly: address), count >= 0 else {
        throw ELFError(code: .io, message: "address \(address) out of range for \(path)")
    }
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 {
        throw ELFError(code: .io, message: "cannot open \(path)", cause: SystemError(function: "open", errno: errno))
    }
    defer { close(fd) }
    var failure: ELFError?
    let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
        var done = 0
        while done < count {
            let n = pread(fd, buffer.baseAddress! + done, count - done, offset + off_t(done))
            if n < 0, errno == EINTR {
                continue
            }
            if n <= 0 {
                failure = ELFError(
                    code: .io,
                    message: "reading \(count) bytes at \(address) from \(path)",
                    cause: SystemError(function: "pread", errno: n < 0 ? errno : 0)
                )
                break
            }
            done += n
        }
        initialized = failure == nil ? count : 0
    }
    if let failure {
        throw failure
    }
    return bytes
}
