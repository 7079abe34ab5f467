// SymbolTable.swift: the compact sorted table of function symbols built for address lookup: 16 bytes per
// function, names read from their source on demand.

/// A compact, sorted function table for address lookup.
///
/// Each entry costs 16 bytes: its start, its length and the offset of its name in one of the table's
/// ``NameSource``s. Names stay in the file's string table and are read (with `pread`) when a lookup needs
/// one. Entries are sorted by start address and deduplicated (aliases at one address keep the best name), and
/// every entry has an end: `start + size` for sized symbols, or the next symbol's start (bounded by the end of
/// its section) for symbols recorded with size 0.
package struct SymbolTable: Sendable {
    private var starts: [UInt64] = []
    /// `end - start`; `UInt32.max` means the end is in `longEnds`.
    private var lengths: [UInt32] = []
    /// The name's offset in the concatenation of `sources` (source `k` starts at `bases[k]`).
    private var nameReferences: [UInt32] = []
    /// Ends of the (hostile-input only) entries longer than 4 GiB, by index.
    private var longEnds: [Int: UInt64] = [:]
    private var sources: [NameSource] = []
    private var bases: [UInt64] = []

    package static let empty = SymbolTable()

    /// The number of functions in the table.
    package var count: Int { self.starts.count }

    /// Bytes held by the table, for the cache's byte budget and logs: the entries, the names kept in memory
    /// (perf maps, MiniDebugInfo and vDSO string tables) and a fixed overhead per source.
    package var byteCount: Int {
        self.starts.count * 16 + self.longEnds.count * 48
            + self.sources.reduce(0) { $0 + $1.residentByteCount + 64 }
    }

    /// How far back lookups look for an enclosing symbol when the nearest one ends before the address.
    private static let overlapSearchDepth = 16

    /// The function containing `address` (a link-time address), if any and if its name can be read.
    package func lookup(_ address: UInt64) -> (name: String, start: UInt64)? {
        guard let index = self.index(containing: address), let name = self.name(at: index) else {
            return nil
        }
        return (name, self.starts[index])
    }

    private func end(at index: Int) -> UInt64 {
        let length = self.lengths[index]
        if length == UInt32.max, let end = self.longEnds[index] {
            return end
        }
        return self.starts[index] &+ UInt64(length)
    }

    /// The index of the function containing `address` (a link-time address), if any.
    package func index(containing address: UInt64) -> Int? {
        // Symbols may overlap (aliases, nested functions): walk back a few from the last start at or below.
        var index = self.starts.lastIndex(atMost: address, by: { $0 }) ?? -1
        var depth = 0
        while index >= 0, depth < Self.overlapSearchDepth {
            if address < self.end(at: index) {
                return index
            }
            index -= 1
            depth += 1
        }
        return nil
    }

    /// The raw name of the function at `index`, read from its string table; nil if it can't be read.
    package func name(at index: Int) -> String? {
        let reference = UInt64(self.nameReferences[index])
        for (source, base) in zip(self.sources, self.bases) where reference >= base && reference - base < source.size {
            return source.name(at: reference - base)
        }
        return nil
    }

    /// Collects symbols from one or more files, then sorts them into a ``SymbolTable``.
    ///
    /// Symbol tables are read in chunks of about 64 KiB and their string tables are only scanned (to reject
    /// empty and unterminated names and rank aliases), so building costs 24 bytes per function symbol plus
    /// the final table, whatever the files' sizes.
    package struct Builder {
        package init() {}

        /// 24 bytes.
        private struct Entry {
            var start: UInt64
            var size: UInt64
            /// The name's offset in its source's string table.
            var nameOffset: UInt32
            /// `rank` (bits 0–10) | source index (bits 11–15) | `sectionEnds` index (bits 16–31).
            var packed: UInt32

            var rank: UInt32 { self.packed & 0x7ff }
            var source: Int { Int((self.packed >> 11) & 0x1f) }
            var sectionEndIndex: Int { Int(self.packed >> 16) }
        }

        /// Source 0 holds names added as bytes (``add(_:)``); file string tables follow.
        private static let maximumSources = 32
        private static let chunkSize = 64 << 10

        private var entries: [Entry] = []
        /// Names added as bytes, NUL-terminated.
        private var inlineNames: [UInt8] = []
        private var sources: [NameSource?] = [nil]
        /// Distinct section ends; index 0 means none.
        private var sectionEnds: [UInt64] = [0]
        private var sectionEndIndices: [UInt64: UInt32] = [:]
        /// Whether to cut names at `@` (ELF symbol versions); off for perf maps, whose names may contain `@`.
        package var stripsSymbolVersions = true

        package var count: Int { self.entries.count }

        /// Bytes the builder holds so far: its entries and the names added as bytes.
        package var pendingByteCount: Int { self.entries.count * MemoryLayout<Entry>.stride + self.inlineNames.count }

        private mutating func sectionEndIndex(_ end: UInt64?) -> UInt32 {
            guard let end, end != 0 else {
                return 0
            }
            if let known = self.sectionEndIndices[end] {
                return known
            }
            guard self.sectionEnds.count <= Int(UInt16.max) else {
                return 0
            }
            let index = UInt32(self.sectionEnds.count)
            self.sectionEnds.append(end)
            self.sectionEndIndices[end] = index
            return index
        }

        /// The rank of an alias, without the part that depends on its name: a recorded size, global over
        /// weak over local binding, and .symtab over .dynsym.
        private static func baseRank(size: UInt64, binding: UInt8, isDynamic: Bool) -> UInt32 {
            var rank: UInt32 = 0
            if size > 0 { rank += 1000 }
            switch binding {
            case 1: rank += 200
            case 2: rank += 100
            default: break
            }
            if !isDynamic { rank += 1 }
            return rank
        }

        /// The name's share of the rank: fewer leading underscores (`malloc` over `__libc_malloc`).
        private static func nameRank(_ name: some Collection<UInt8>) -> UInt32 {
            let underscores = name.prefix { $0 == 0x5f }.count
            return UInt32(10 * (9 - min(underscores, 9)))
        }

        /// Adds a symbol whose name is given as bytes (perf maps, tests).
        package mutating func add(_ symbol: RawFunctionSymbol) {
            var name = symbol.name
            if self.stripsSymbolVersions, let at = name.firstIndex(of: UInt8(ascii: "@")), at > name.startIndex {
                name = name[name.startIndex..<at]
            }
            guard !name.isEmpty, self.inlineNames.count < Int(UInt32.max) - name.count - 1 else {
                return
            }
            let rank =
                Self.baseRank(size: symbol.size, binding: symbol.binding, isDynamic: symbol.isDynamic)
                + Self.nameRank(name)
            self.entries.append(
                Entry(
                    start: symbol.value,
                    size: symbol.size,
                    nameOffset: UInt32(self.inlineNames.count),
                    packed: rank | self.sectionEndIndex(symbol.sectionEnd) << 16
                )
            )
            self.inlineNames.append(contentsOf: name)
            self.inlineNames.append(0)
        }

        /// Adds the defined function symbols of `elf`'s selected tables (the same ones
        /// ``ELFFile/forEachFunctionSymbol(in:_:)`` reports), reading each table in bounded chunks and keeping
        /// a reference to its string table instead of the names.
        ///
        /// - Throws: ``ELFError`` when a symbol table or its string table is malformed; symbols read before
        ///   the damage are kept.
        package mutating func addFunctionSymbols(of elf: ELFFile, in kinds: ELFFile.SymbolTableKinds) throws(ELFError) {
            let is64 = elf.is64Bit
            let minimumEntrySize: UInt64 = is64 ? 24 : 16
            var sourceByLink: [UInt32: Int] = [:]
            for section in elf.sections {
                let isDynamic: Bool
                switch section.type {
                case ELFFile.Section.typeSymtab where kinds.contains(.symtab): isDynamic = false
                case ELFFile.Section.typeDynsym where kinds.contains(.dynsym): isDynamic = true
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
                guard Int(exactly: section.link).map({ $0 < elf.sections.count }) ?? false else {
                    throw ELFError(code: .malformed, message: "symbol table \(section.name) sh_link \(section.link)")
                }
                let stringSection = elf.sections[Int(section.link)]
                guard stringSection.type == ELFFile.Section.typeStrtab, !stringSection.hasNoBits else {
                    throw ELFError(
                        code: .malformed,
                        message: "symbol table \(section.name) links to non-string section \(section.link)"
                    )
                }
                try Self.checkReadable(section, in: elf)
                try Self.checkReadable(stringSection, in: elf)
                // The table is ≤ 512 MiB (checked above) and the stride at most its size, so offsets fit an Int.
                guard let stride = Int(exactly: section.entrySize), UInt64(stride) <= section.size else {
                    continue
                }
                let count = Int(section.size) / stride
                if count < 2 {
                    continue
                }
                let sourceIndex: Int
                if let known = sourceByLink[section.link] {
                    sourceIndex = known
                } else {
                    guard self.sources.count < Self.maximumSources,
                        let source = try Self.nameSource(for: stringSection, in: elf, strips: self.stripsSymbolVersions)
                    else {
                        continue
                    }
                    sourceIndex = self.sources.count
                    self.sources.append(source)
                    sourceByLink[section.link] = sourceIndex
                }
                let first = self.entries.count
                // Count first (reading the table twice, in chunks) so the entries are allocated once, at their
                // exact size: growing by doubling would hold up to three times as much while copying.
                var functions = 0
                try? self.readEntries(
                    of: section,
                    in: elf,
                    stride: stride,
                    count: count,
                    sourceIndex: sourceIndex,
                    isDynamic: isDynamic,
                    stringTableSize: stringSection.size,
                    countingInto: &functions
                )
                self.entries.reserveCapacity(first + functions)
                var failure: ELFError?
                do {
                    var added = 0
                    try self.readEntries(
                        of: section,
                        in: elf,
                        stride: stride,
                        count: count,
                        sourceIndex: sourceIndex,
                        isDynamic: isDynamic,
                        stringTableSize: stringSection.size,
                        appending: true,
                        countingInto: &added
                    )
                } catch {
                    failure = error
                }
                if let source = self.sources[sourceIndex] {
                    self.checkNames(from: first, in: source)
                }
                if let failure {
                    throw failure
                }
            }
        }

        /// Throws as ``ELFFile/data(of:)`` would for `section`, without reading it.
        private static func checkReadable(_ section: ELFFile.Section, in elf: ELFFile) throws(ELFError) {
            try elf.source.checkReadable(offset: section.offset, count: section.size, what: "section \(section.name)")
        }

        /// A file's string table stays in the file; one inside an in-memory image (MiniDebugInfo, the vDSO)
        /// is copied so the image can be freed.
        private static func nameSource(
            for section: ELFFile.Section,
            in elf: ELFFile,
            strips: Bool
        ) throws(ELFError) -> NameSource? {
            if elf.source.residentByteCount > 0 {
                let bytes = try elf.data(of: section)
                return NameSource(
                    source: ELFByteSource(bytes: bytes),
                    offset: 0,
                    size: UInt64(bytes.count),
                    stripsSymbolVersions: strips
                )
            }
            return NameSource(
                source: elf.source,
                offset: section.offset,
                size: section.size,
                stripsSymbolVersions: strips
            )
        }

        private mutating func readEntries(
            of section: ELFFile.Section,
            in elf: ELFFile,
            stride: Int,
            count: Int,
            sourceIndex: Int,
            isDynamic: Bool,
            stringTableSize: UInt64,
            appending: Bool = false,
            countingInto found: inout Int
        ) throws(ELFError) {
            let is64 = elf.is64Bit
            let perChunk = max(1, Self.chunkSize / stride)
            var next = 1
            while next < count {
                let chunkCount = min(perChunk, count - next)
                let bytes = try elf.source.read(
                    offset: section.offset + UInt64(next * stride),
                    count: UInt64(chunkCount * stride),
                    what: "symbol table \(section.name)"
                )
                let table = ELFBytes(bytes: bytes, littleEndian: elf.isLittleEndian)
                for j in 0..<chunkCount {
                    let base = j * stride
                    let entry = try ELFSymbolEntry(in: table, at: base, is64: is64)
                    guard entry.isDefinedFunction, UInt64(entry.nameOffset) < stringTableSize else {
                        continue
                    }
                    let (nameOffset, info, sectionIndex, value, size) =
                        (entry.nameOffset, entry.info, entry.sectionIndex, entry.value, entry.size)
                    found += 1
                    guard appending else {
                        continue
                    }
                    let sectionEnd = elf.sectionEnd(ofIndex: sectionIndex)
                    let rank = Self.baseRank(size: size, binding: info >> 4, isDynamic: isDynamic)
                    self.entries.append(
                        Entry(
                            start: value,
                            size: size,
                            nameOffset: nameOffset,
                            packed: rank | UInt32(sourceIndex) << 11 | self.sectionEndIndex(sectionEnd) << 16
                        )
                    )
                }
                next += chunkCount
            }
        }

        /// Scans the string table once, in name order and in chunks, for the entries from `first` on: drops
        /// those whose names are empty or not NUL-terminated (as a whole-table read would) and adds the
        /// name's share to each rank.
        private mutating func checkNames(from first: Int, in source: NameSource) {
            guard first < self.entries.count else {
                return
            }
            self.entries.withUnsafeMutableBufferPointer { entries in
                Self.heapSort(UnsafeMutableBufferPointer(rebasing: entries[first...])) { $0.nameOffset < $1.nameOffset }
            }
            // Names at or before the table's last NUL are terminated.
            var lastNUL: UInt64?
            var end = source.size
            while end > 0 {
                let count = min(UInt64(Self.chunkSize), end)
                guard let chunk = source.bytes(at: end - count, count: count) else {
                    break
                }
                if let index = chunk.lastIndex(of: 0) {
                    lastNUL = end - count + UInt64(index)
                    break
                }
                end -= count
            }
            let prefixLength: UInt64 = 10
            var window: [UInt8] = []
            var windowStart: UInt64 = 0
            var kept = first
            for index in first..<self.entries.count {
                var entry = self.entries[index]
                let offset = UInt64(entry.nameOffset)
                guard let lastNUL, offset <= lastNUL else {
                    continue
                }
                let windowEnd = windowStart + UInt64(window.count)
                if window.isEmpty || offset < windowStart || offset >= windowEnd
                    || (offset + prefixLength > windowEnd && windowEnd < source.size)
                {
                    let count = min(UInt64(Self.chunkSize) + prefixLength, source.size - offset)
                    guard let bytes = source.bytes(at: offset, count: count) else {
                        window = []
                        continue
                    }
                    window = bytes
                    windowStart = offset
                }
                let from = Int(offset - windowStart)
                let prefix = window[from..<min(window.count, from + Int(prefixLength))]
                guard let firstByte = prefix.first, firstByte != 0 else {
                    continue
                }
                entry.packed += Self.nameRank(prefix.prefix { $0 != 0 })
                self.entries[kept] = entry
                kept += 1
            }
            self.entries.removeSubrange(kept...)
        }

        /// Heapsort: in place and without allocating, unlike the standard library's stable sort, whose scratch
        /// buffer would cost another 12 bytes per symbol while a large table is built.
        private static func heapSort(
            _ entries: UnsafeMutableBufferPointer<Entry>,
            by areInIncreasingOrder: (Entry, Entry) -> Bool
        ) {
            let count = entries.count
            if count < 2 {
                return
            }
            var start = count / 2 - 1
            while start >= 0 {
                Self.siftDown(entries, from: start, end: count, by: areInIncreasingOrder)
                start -= 1
            }
            var end = count - 1
            while end > 0 {
                entries.swapAt(0, end)
                Self.siftDown(entries, from: 0, end: end, by: areInIncreasingOrder)
                end -= 1
            }
        }

        private static func siftDown(
            _ entries: UnsafeMutableBufferPointer<Entry>,
            from start: Int,
            end: Int,
            by areInIncreasingOrder: (Entry, Entry) -> Bool
        ) {
            var root = start
            while true {
                var child = 2 * root + 1
                if child >= end {
                    return
                }
                if child + 1 < end, areInIncreasingOrder(entries[child], entries[child + 1]) {
                    child += 1
                }
                if !areInIncreasingOrder(entries[root], entries[child]) {
                    return
                }
                entries.swapAt(root, child)
                root = child
            }
        }

        /// Sorts, deduplicates and compacts the collected symbols. The builder is left empty.
        package mutating func build() -> SymbolTable {
            var entries = self.entries
            self.entries = []
            var table = SymbolTable()
            // Concatenate the sources' offset spaces; a source that doesn't fit 32 bits is dropped.
            var inline = self.inlineNames
            self.inlineNames = []
            inline.append(0)
            self.sources[0] = NameSource(
                source: ELFByteSource(bytes: inline),
                offset: 0,
                size: UInt64(inline.count),
                stripsSymbolVersions: false
            )
            var bases: [UInt64?] = []
            var next: UInt64 = 0
            for source in self.sources {
                guard let source, next + source.size <= UInt64(UInt32.max) else {
                    bases.append(nil)
                    continue
                }
                bases.append(next)
                table.sources.append(source)
                table.bases.append(next)
                next += source.size
            }
            if bases.contains(nil) {
                entries.removeAll { bases[$0.source] == nil }
            }
            // By address, then best alias first; source and name offset make the order total, so the unstable
            // sort is deterministic.
            entries.withUnsafeMutableBufferPointer { entries in
                Self.heapSort(entries) { a, b in
                    if a.start != b.start { return a.start < b.start }
                    if a.rank != b.rank { return a.rank > b.rank }
                    if a.source != b.source { return a.source < b.source }
                    return a.nameOffset < b.nameOffset
                }
            }
            var unique = 0
            for index in entries.indices where unique == 0 || entries[unique - 1].start != entries[index].start {
                entries[unique] = entries[index]
                unique += 1
            }
            table.starts.reserveCapacity(unique)
            table.lengths.reserveCapacity(unique)
            table.nameReferences.reserveCapacity(unique)
            for i in 0..<unique {
                let entry = entries[i]
                let next: UInt64? = i + 1 < unique ? entries[i + 1].start : nil
                let sectionEnd = self.sectionEnds[entry.sectionEndIndex]
                var end: UInt64
                if entry.size > 0 {
                    let (sum, overflow) = entry.start.addingReportingOverflow(entry.size)
                    end = overflow ? UInt64.max : sum
                } else if sectionEnd > entry.start {
                    end = min(sectionEnd, next ?? sectionEnd)
                } else {
                    end = next ?? (entry.start &+ 1)
                }
                if end <= entry.start {
                    end = entry.start &+ 1
                }
                // end == 0 < start only for a symbol at UInt64.max, which then contains nothing.
                if end <= entry.start || end - entry.start >= UInt64(UInt32.max) {
                    table.longEnds[i] = end
                    table.lengths.append(UInt32.max)
                } else {
                    table.lengths.append(UInt32(end - entry.start))
                }
                table.starts.append(entry.start)
                // bases[source] + nameOffset < bases[source] + size ≤ UInt32.max.
                table.nameReferences.append(UInt32((bases[entry.source] ?? 0) + UInt64(entry.nameOffset)))
            }
            return table
        }
    }
}
