// KernelSymbols.swift: kernel text symbols from `/proc/kallsyms`, sorted for binary search; each extends to the
// next symbol but no further than a size cap, and the table is empty when `kptr_restrict` hides addresses.

import HearthELF

/// Kernel text symbols parsed from `/proc/kallsyms`, sorted for binary search.
///
/// Each line reads `address type name [module]`. Only text symbols (types `t`, `T`, `w`, `W`) with a
/// nonzero address are kept; when `kptr_restrict` hides addresses every address reads as zero and the
/// table is empty, so every lookup misses. kallsyms records no sizes: a symbol is taken to extend to the
/// next symbol, but no further than ``maximumSymbolSize``, so an address in a gap between modules isn't
/// credited to the last function before it.
struct KernelSymbols: Sendable {
    /// The module name used for symbols of the core kernel image, as `perf` prints it.
    static let kernelModuleName = "[kernel.kallsyms]"
    /// How far past a symbol's start an address may lie and still be attributed to it.
    static let maximumSymbolSize: UInt64 = 1 << 20

    private var starts: [UInt64] = []
    private var nameOffsets: [UInt32] = []
    private var nameLengths: [UInt16] = []
    private var moduleIndices: [UInt16] = []
    private var names: [UInt8] = []
    /// Module names with brackets, index 0 being ``kernelModuleName``.
    private var modules: [String] = [Self.kernelModuleName]

    /// The number of symbols.
    var count: Int { self.starts.count }

    init() {}

    /// Parses the text of `/proc/kallsyms`. Lines that don't parse are skipped.
    init(parsing text: [UInt8]) {
        struct Entry {
            var address: UInt64
            var nameOffset: UInt32
            var nameLength: UInt16
            var module: UInt16
        }
        var entries: [Entry] = []
        var moduleIndex: [String: UInt16] = [:]
        var names: [UInt8] = []
        var modules = [Self.kernelModuleName]
        text.withUnsafeBufferPointer { buffer in
            var position = 0
            let count = buffer.count
            while position < count {
                var lineEnd = position
                while lineEnd < count, buffer[lineEnd] != 0x0a {
                    lineEnd += 1
                }
                defer { position = lineEnd + 1 }
                // Address: hex digits up to the first space.
                var index = position
                var address: UInt64 = 0
                var digits = 0
                while index < lineEnd, buffer[index] != 0x20 {
                    let c = buffer[index]
                    let nibble: UInt8
                    switch c {
                    case 0x30...0x39: nibble = c - 0x30
                    case 0x61...0x66: nibble = c - 0x61 + 10
                    case 0x41...0x46: nibble = c - 0x41 + 10
                    default: nibble = 0xff
                    }
                    if nibble == 0xff || digits == 16 {
                        digits = -1
                        break
                    }
                    address = address << 4 | UInt64(nibble)
                    digits += 1
                    index += 1
                }
                guard digits > 0, index + 3 < lineEnd, buffer[index + 2] == 0x20 else {
                    continue
                }
                let type = buffer[index + 1]
                guard
                    type == UInt8(ascii: "t") || type == UInt8(ascii: "T") || type == UInt8(ascii: "w")
                        || type == UInt8(ascii: "W"), address != 0
                else {
                    continue
                }
                let nameStart = index + 3
                var nameEnd = nameStart
                while nameEnd < lineEnd, buffer[nameEnd] != 0x09, buffer[nameEnd] != 0x20 {
                    nameEnd += 1
                }
                let nameLength = nameEnd - nameStart
                guard nameLength > 0, nameLength <= Int(UInt16.max), names.count <= Int(UInt32.max) - nameLength else {
                    continue
                }
                // Optional "\t[module]".
                var module: UInt16 = 0
                var moduleStart = nameEnd
                while moduleStart < lineEnd, buffer[moduleStart] == 0x09 || buffer[moduleStart] == 0x20 {
                    moduleStart += 1
                }
                if moduleStart < lineEnd, buffer[moduleStart] == UInt8(ascii: "[") {
                    var moduleEnd = moduleStart
                    while moduleEnd < lineEnd, buffer[moduleEnd] != UInt8(ascii: "]") {
                        moduleEnd += 1
                    }
                    let name = String(
                        decoding: UnsafeBufferPointer(rebasing: buffer[moduleStart..<min(moduleEnd + 1, lineEnd)]),
                        as: UTF8.self
                    )
                    let normalized = name.hasSuffix("]") ? name : name + "]"
                    if let existing = moduleIndex[normalized] {
                        module = existing
                    } else if modules.count < Int(UInt16.max) {
                        module = UInt16(modules.count)
                        moduleIndex[normalized] = module
                        modules.append(normalized)
                    }
                }
                entries.append(
                    Entry(
                        address: address,
                        nameOffset: UInt32(names.count),
                        nameLength: UInt16(nameLength),
                        module: module
                    )
                )
                names.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[nameStart..<nameEnd]))
            }
        }
        entries.sort { $0.address < $1.address }
        self.starts = entries.map(\.address)
        self.nameOffsets = entries.map(\.nameOffset)
        self.nameLengths = entries.map(\.nameLength)
        self.moduleIndices = entries.map(\.module)
        self.names = names
        self.modules = modules
    }

    /// The symbol containing `address`: its name, start and module (`[kernel.kallsyms]` or `[ext4]`).
    func lookup(_ address: UInt64) -> (name: String, start: UInt64, module: String)? {
        guard let index = self.starts.lastIndex(atMost: address, by: { $0 }),
            address - self.starts[index] < Self.maximumSymbolSize
        else { return nil }
        let offset = Int(self.nameOffsets[index])
        let name = String(decoding: self.names[offset..<offset + Int(self.nameLengths[index])], as: UTF8.self)
        return (name, self.starts[index], self.modules[Int(self.moduleIndices[index])])
    }
}
