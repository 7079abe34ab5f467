// PerfMapReader.swift: a process's perf map (`START SIZE NAME` lines, hex) parsed as a stream, in chunks, with a cap on
// line length, on bytes read and on the table it builds: an 11-million-line map costs its caps, not its size.

#if canImport(Glibc)
import HearthELF
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Parses perf map text fed in chunks of any size into a symbol table, within byte limits.
struct PerfMapReader {
    /// The limits one map is read within.
    struct Limits: Sendable {
        /// Bytes of the file read at most; the rest is ignored (and the map reported truncated).
        var maximumFileBytes: Int = 8 << 20
        /// Bytes the table may hold while it is built (24 bytes an entry plus its name); further lines are ignored.
        var maximumTableBytes: Int = 2 << 20
        /// The longest line kept: a runtime's names are far shorter, a longer line is skipped whole.
        var maximumLineBytes: Int = 4096
    }

    let limits: Limits
    private var builder = SymbolTable.Builder()
    /// The start of a line that continues in the next chunk.
    private var partialLine: [UInt8] = []
    /// Whether the current line grew past the limit: skip it up to its newline.
    private var skippingLongLine = false
    /// Bytes fed so far.
    private(set) var bytesRead = 0
    /// Whether a limit cut the map short (lines past a limit, or over-long lines).
    private(set) var truncated = false
    /// Lines that were not `START SIZE NAME` with hex numbers and a non-zero start.
    private(set) var malformedLines = 0

    init(limits: Limits = Limits()) {
        self.limits = limits
        self.builder.stripsSymbolVersions = false
    }

    /// Whether more input can still be used.
    var wantsMore: Bool {
        self.bytesRead < self.limits.maximumFileBytes && self.builder.pendingByteCount < self.limits.maximumTableBytes
    }

    /// Parses the next bytes of the map. Input beyond the limits is ignored.
    mutating func feed(_ chunk: some Collection<UInt8>) {
        var chunk = ArraySlice(chunk)
        let room = self.limits.maximumFileBytes - self.bytesRead
        let cut = chunk.count > room
        if cut {
            chunk = chunk.prefix(max(0, room))
            self.truncated = true
        }
        self.bytesRead += chunk.count
        // A line the file limit cuts in two is not a line of the file: drop its start.
        defer {
            if cut {
                self.partialLine.removeAll()
                self.skippingLongLine = true
            }
        }
        while !chunk.isEmpty {
            guard let newline = chunk.firstIndex(of: 0x0a) else {
                self.appendPartial(chunk)
                return
            }
            if self.partialLine.isEmpty, !self.skippingLongLine {
                self.parseLine(chunk[chunk.startIndex..<newline])
            } else {
                self.appendPartial(chunk[chunk.startIndex..<newline])
                if !self.skippingLongLine { self.parseLine(ArraySlice(self.partialLine)) }
                self.partialLine.removeAll(keepingCapacity: true)
                self.skippingLongLine = false
            }
            chunk = chunk[(newline + 1)...]
        }
    }

    private mutating func appendPartial(_ bytes: ArraySlice<UInt8>) {
        guard !self.skippingLongLine else { return }
        if self.partialLine.count + bytes.count > self.limits.maximumLineBytes {
            self.skippingLongLine = true
            self.truncated = true
            self.partialLine.removeAll(keepingCapacity: true)
            return
        }
        self.partialLine.append(contentsOf: bytes)
    }

    private mutating func parseLine(_ line: ArraySlice<UInt8>) {
        guard line.count <= self.limits.maximumLineBytes else {
            self.truncated = true
            return
        }
        guard self.builder.pendingByteCount < self.limits.maximumTableBytes else {
            self.truncated = true
            return
        }
        let fields = line.split(separator: 0x20, maxSplits: 2, omittingEmptySubsequences: true)
        guard fields.count == 3, let start = Self.hex(fields[0]), let size = Self.hex(fields[1]), start != 0 else {
            if !line.isEmpty { self.malformedLines += 1 }
            return
        }
        self.builder.add(
            RawFunctionSymbol(
                value: start,
                size: size,
                type: 2,
                binding: 1,
                sectionIndex: 0,
                isDynamic: false,
                name: fields[2],
                sectionEnd: nil
            )
        )
    }

    /// Ends the input (a last line without a newline counts) and returns the table.
    mutating func finish() -> SymbolTable {
        if !self.partialLine.isEmpty, !self.skippingLongLine {
            self.parseLine(ArraySlice(self.partialLine))
        }
        self.partialLine = []
        return self.builder.build()
    }

    /// The number of functions parsed so far.
    var count: Int { self.builder.count }

    /// A hex number with an optional `0x`, at most 16 digits.
    static func hex(_ field: ArraySlice<UInt8>) -> UInt64? {
        var digits = field
        if digits.count > 2, digits.first == UInt8(ascii: "0"),
            digits[digits.startIndex + 1] | 0x20 == UInt8(ascii: "x")
        {
            digits = digits.dropFirst(2)
        }
        return ProcMaps.hexValue(digits)
    }

    /// Reads an opened map in 64 KiB chunks until the end or a limit.
    static func read(_ file: WorkloadFile, limits: Limits) -> (table: SymbolTable, truncated: Bool, malformed: Int) {
        var reader = PerfMapReader(limits: limits)
        var offset: UInt64 = 0
        // A read that fails or stalls ends the map where it is: what was read is used.
        while reader.wantsMore, let chunk = try? file.read(upTo: 64 << 10, at: offset), !chunk.isEmpty {
            reader.feed(chunk[...])
            offset += UInt64(chunk.count)
        }
        if !reader.wantsMore, offset < file.size { reader.truncated = true }
        let table = reader.finish()
        return (table, reader.truncated, reader.malformedLines)
    }
}
