// NameSource.swift: where a symbol table's names live (a file's string table, read on demand, or bytes in memory).

/// Where a symbol table's names are read from when a lookup first needs one: a string table in an open file
/// (the descriptor stays open as long as the table is alive and closes with it) or a small byte array.
package final class NameSource: Sendable {
    /// The longest name read; longer names (never seen outside hostile input) are cut.
    package static let maximumNameLength = 64 << 10

    private let source: ELFByteSource
    /// Where the string table starts in `source`.
    private let offset: UInt64
    /// The string table's size; `offset + size` lies inside `source` (checked at creation).
    package let size: UInt64
    /// Whether to cut names at `@` (ELF symbol versions).
    private let stripsSymbolVersions: Bool

    /// A string table read on demand from `source`; nil if the table lies outside it.
    package init?(source: ELFByteSource, offset: UInt64, size: UInt64, stripsSymbolVersions: Bool) {
        let (end, overflow) = offset.addingReportingOverflow(size)
        guard !overflow, end <= source.size else {
            return nil
        }
        self.source = source
        self.offset = offset
        self.size = size
        self.stripsSymbolVersions = stripsSymbolVersions
    }

    /// Bytes this source keeps in memory (0 for a file, whose names stay on disk).
    package var residentByteCount: Int { self.source.residentByteCount }

    /// Reads `count` bytes of the string table at `position`; nil on I/O errors or outside the table.
    package func bytes(at position: UInt64, count: UInt64) -> [UInt8]? {
        guard position <= self.size, count <= self.size - position else {
            return nil
        }
        return try? self.source.read(offset: self.offset + position, count: count, what: "string table")
    }

    /// The NUL-terminated name at `position`, without its symbol version; nil if it is empty, unterminated,
    /// or can't be read. Reads a small piece first and more only for long names.
    package func name(at position: UInt64) -> String? {
        guard position < self.size else {
            return nil
        }
        var name: [UInt8] = []
        var next = position
        var piece: UInt64 = 512
        while name.count < Self.maximumNameLength {
            if next == self.size {
                // No NUL before the end of the table.
                return nil
            }
            let count = min(piece, self.size - next, UInt64(Self.maximumNameLength - name.count))
            guard let chunk = self.bytes(at: next, count: count) else {
                return nil
            }
            if let nul = chunk.firstIndex(of: 0) {
                name.append(contentsOf: chunk[..<nul])
                break
            }
            name.append(contentsOf: chunk)
            next += count
            piece = 4096
        }
        var slice = name[...]
        // Symbol versions spelled into .symtab names (`realpath@@GLIBC_2.3`, `memcpy@GLIBC_2.2.5`, as in
        // glibc's debug files) are not part of the function's name.
        if self.stripsSymbolVersions, let at = slice.firstIndex(of: UInt8(ascii: "@")), at > slice.startIndex {
            slice = slice[..<at]
        }
        return slice.isEmpty ? nil : String(decoding: slice, as: UTF8.self)
    }
}
