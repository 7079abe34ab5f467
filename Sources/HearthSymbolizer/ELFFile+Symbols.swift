//===----------------------------------------------------------------------===//
// Hearth — continuous profiling for Kubernetes. HearthSymbolizer module.
//===----------------------------------------------------------------------===//

/// One function symbol as read from a symbol table, with its name still as bytes of the string table.
struct RawFunctionSymbol {
    var value: UInt64
    var size: UInt64
    var type: UInt8
    var binding: UInt8
    var sectionIndex: UInt16
    var isDynamic: Bool
    var name: ArraySlice<UInt8>
    /// The end address of the section the symbol is defined in, when known; bounds zero-size symbols.
    var sectionEnd: UInt64?
}

extension ELFFile {
    /// Which symbol tables to read.
    struct SymbolTableKinds: OptionSet {
        let rawValue: UInt8
        static let symtab = SymbolTableKinds(rawValue: 1)
        static let dynsym = SymbolTableKinds(rawValue: 2)
        static let all: SymbolTableKinds = [.symtab, .dynsym]
    }

    /// All defined function symbols from `.symtab` and `.dynsym`, in table order.
    ///
    /// Only `STT_FUNC` and `STT_GNU_IFUNC` symbols that are defined in a regular section, have a nonzero
    /// value and a non-empty name are returned; data, section, file and undefined symbols are skipped.
    ///
    /// - Throws: ``ELFError`` when a symbol table or its string table is malformed.
    public func functionSymbols() throws(ELFError) -> [Symbol] {
        var result: [Symbol] = []
        try self.forEachFunctionSymbol(in: .all) { raw in
            result.append(
                Symbol(
                    name: String(decoding: raw.name, as: UTF8.self),
                    value: raw.value,
                    size: raw.size,
                    type: raw.type,
                    binding: raw.binding,
                    sectionIndex: raw.sectionIndex,
                    isDynamic: raw.isDynamic
                )
            )
        }
        return result
    }

    /// Calls `body` for each defined function symbol of the selected tables.
    func forEachFunctionSymbol(
        in kinds: SymbolTableKinds,
        _ body: (RawFunctionSymbol) -> Void
    ) throws(ELFError) {
        let is64 = self.is64Bit
        let minimumEntrySize: UInt64 = is64 ? 24 : 16
        for section in self.sections {
            let isDynamic: Bool
            switch section.type {
            case Section.typeSymtab where kinds.contains(.symtab): isDynamic = false
            case Section.typeDynsym where kinds.contains(.dynsym): isDynamic = true
            default: continue
            }
            if section.hasNoBits || section.size == 0 {
                continue
            }
            guard section.entrySize >= minimumEntrySize else {
                throw ELFError(
                    code: .malformed,
                    message: "symbol table \(section.name) entry size \(section.entrySize)"
                )
            }
            guard Int(exactly: section.link).map({ $0 < self.sections.count }) ?? false else {
                throw ELFError(code: .malformed, message: "symbol table \(section.name) sh_link \(section.link)")
            }
            let stringSection = self.sections[Int(section.link)]
            guard stringSection.type == Section.typeStrtab, !stringSection.hasNoBits else {
                throw ELFError(
                    code: .malformed,
                    message: "symbol table \(section.name) links to non-string section \(section.link)"
                )
            }
            let table = ELFBytes(bytes: try self.data(of: section), littleEndian: self.isLittleEndian)
            let strings = ELFBytes(bytes: try self.data(of: stringSection), littleEndian: self.isLittleEndian)
            // The table was read (≤ 512 MiB) and the stride is at most its size, so every offset fits an Int.
            guard let stride = Int(exactly: section.entrySize), stride <= table.count else {
                continue
            }
            let count = table.count / stride
            if count < 2 {
                continue
            }
            for i in 1..<count {
                let base = i * stride
                let nameOffset: UInt32
                let info: UInt8
                let sectionIndex: UInt16
                let value: UInt64
                let size: UInt64
                if is64 {
                    nameOffset = try table.u32(base)
                    info = try table.u8(base + 4)
                    sectionIndex = try table.u16(base + 6)
                    value = try table.u64(base + 8)
                    size = try table.u64(base + 16)
                } else {
                    nameOffset = try table.u32(base)
                    value = UInt64(try table.u32(base + 4))
                    size = UInt64(try table.u32(base + 8))
                    info = try table.u8(base + 12)
                    sectionIndex = try table.u16(base + 14)
                }
                let type = info & 0xf
                // STT_FUNC = 2, STT_GNU_IFUNC = 10. SHN_UNDEF = 0; 0xff00 and above are reserved indices
                // (SHN_ABS, SHN_COMMON, SHN_XINDEX).
                guard type == 2 || type == 10, sectionIndex != 0, sectionIndex < 0xff00, value != 0 else {
                    continue
                }
                guard let name = strings.cString(at: Int(nameOffset)), !name.isEmpty else {
                    continue
                }
                var sectionEnd: UInt64?
                if Int(sectionIndex) < self.sections.count {
                    let home = self.sections[Int(sectionIndex)]
                    let (end, overflow) = home.address.addingReportingOverflow(home.size)
                    if !overflow, home.size > 0 {
                        sectionEnd = end
                    }
                }
                body(
                    RawFunctionSymbol(
                        value: value,
                        size: size,
                        type: type,
                        binding: info >> 4,
                        sectionIndex: sectionIndex,
                        isDynamic: isDynamic,
                        name: name,
                        sectionEnd: sectionEnd
                    )
                )
            }
        }
    }
}

/// A compact, sorted function table for address lookup.
///
/// Names are stored once in a byte blob; each entry costs 24 bytes plus its name. Entries are sorted by
/// start address and deduplicated (aliases at one address keep the best name), and every entry has an end:
/// `start + size` for sized symbols, or the next symbol's start (bounded by the end of its section) for
/// symbols recorded with size 0.
struct SymbolTable: Sendable {
    private var starts: [UInt64] = []
    private var ends: [UInt64] = []
    private var nameOffsets: [UInt32] = []
    private var nameLengths: [UInt32] = []
    private var names: [UInt8] = []

    static let empty = SymbolTable()

    /// The number of functions in the table.
    var count: Int { self.starts.count }

    /// Bytes used by the table's arrays, for cache accounting and logs.
    var byteCount: Int { self.starts.count * 24 + self.names.count }

    /// How far back lookups look for an enclosing symbol when the nearest one ends before the address.
    private static let overlapSearchDepth = 16

    /// The function containing `address` (a link-time address), if any.
    func lookup(_ address: UInt64) -> (name: String, start: UInt64)? {
        self.index(containing: address).map { (self.name(at: $0), self.starts[$0]) }
    }

    /// The index of the function containing `address` (a link-time address), if any.
    func index(containing address: UInt64) -> Int? {
        // First index whose start is greater than the address.
        var low = 0
        var high = self.starts.count
        while low < high {
            let middle = low + (high - low) / 2
            if self.starts[middle] <= address {
                low = middle + 1
            } else {
                high = middle
            }
        }
        var index = low - 1
        var depth = 0
        while index >= 0, depth < Self.overlapSearchDepth {
            if address < self.ends[index] {
                return index
            }
            index -= 1
            depth += 1
        }
        return nil
    }

    /// The raw name of the function at `index`.
    func name(at index: Int) -> String {
        let offset = Int(self.nameOffsets[index])
        let length = Int(self.nameLengths[index])
        return String(decoding: self.names[offset..<offset + length], as: UTF8.self)
    }

    /// Collects symbols from one or more files, then sorts them into a ``SymbolTable``.
    struct Builder {
        private struct Entry {
            var start: UInt64
            var size: UInt64
            var sectionEnd: UInt64
            var nameOffset: UInt32
            var nameLength: UInt32
            var rank: Int
        }

        private var entries: [Entry] = []
        private var names: [UInt8] = []
        /// Whether to cut names at `@` (ELF symbol versions); off for perf maps, whose names may contain `@`.
        var stripsSymbolVersions = true

        var count: Int { self.entries.count }

        mutating func add(_ symbol: RawFunctionSymbol) {
            var symbol = symbol
            // Symbol versions spelled into .symtab names (`realpath@@GLIBC_2.3`, `memcpy@GLIBC_2.2.5`, as in
            // glibc's debug files) are not part of the function's name.
            if self.stripsSymbolVersions, let at = symbol.name.firstIndex(of: UInt8(ascii: "@")),
                at > symbol.name.startIndex
            {
                symbol.name = symbol.name[symbol.name.startIndex..<at]
            }
            guard symbol.name.count < Int(UInt32.max), self.names.count < Int(UInt32.max) - symbol.name.count else {
                return
            }
            // Prefer, among aliases at one address: a recorded size, global over weak over local binding,
            // fewer leading underscores (`malloc` over `__libc_malloc`), and .symtab over .dynsym.
            var rank = 0
            if symbol.size > 0 { rank += 1000 }
            switch symbol.binding {
            case 1: rank += 200
            case 2: rank += 100
            default: break
            }
            let underscores = symbol.name.prefix { $0 == 0x5f }.count
            rank += 10 * (9 - min(underscores, 9))
            if !symbol.isDynamic { rank += 1 }
            self.entries.append(
                Entry(
                    start: symbol.value,
                    size: symbol.size,
                    sectionEnd: symbol.sectionEnd ?? 0,
                    nameOffset: UInt32(self.names.count),
                    nameLength: UInt32(symbol.name.count),
                    rank: rank
                )
            )
            self.names.append(contentsOf: symbol.name)
        }

        /// Sorts, deduplicates and compacts the collected symbols.
        func build() -> SymbolTable {
            let sorted = self.entries.sorted { a, b in
                a.start != b.start ? a.start < b.start : a.rank > b.rank
            }
            var unique: [Entry] = []
            unique.reserveCapacity(sorted.count)
            for entry in sorted where unique.last?.start != entry.start {
                unique.append(entry)
            }
            var table = SymbolTable()
            table.starts.reserveCapacity(unique.count)
            table.ends.reserveCapacity(unique.count)
            table.nameOffsets.reserveCapacity(unique.count)
            table.nameLengths.reserveCapacity(unique.count)
            for (i, entry) in unique.enumerated() {
                let next: UInt64? = i + 1 < unique.count ? unique[i + 1].start : nil
                var end: UInt64
                if entry.size > 0 {
                    let (sum, overflow) = entry.start.addingReportingOverflow(entry.size)
                    end = overflow ? UInt64.max : sum
                } else if entry.sectionEnd > entry.start {
                    end = min(entry.sectionEnd, next ?? entry.sectionEnd)
                } else {
                    end = next ?? (entry.start &+ 1)
                }
                if end <= entry.start {
                    end = entry.start &+ 1
                }
                // Compact the name blob: keep only names that survived deduplication.
                let offset = UInt32(table.names.count)
                let from = Int(entry.nameOffset)
                table.names.append(contentsOf: self.names[from..<from + Int(entry.nameLength)])
                table.starts.append(entry.start)
                table.ends.append(end)
                table.nameOffsets.append(offset)
                table.nameLengths.append(entry.nameLength)
            }
            return table
        }
    }
}
