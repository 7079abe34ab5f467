// WorkloadParserFuzzTests.swift: the parsers of text a workload controls (its perf map, its /proc/PID/maps) on
// hostile input, fuzzed like the ELF reader: thousands of seeded mutations, fed in random chunkings and read from
// files, give the same answer whatever the chunking, stay within their limits, and never trap.

import Foundation
import HearthTestSupport
import Testing

@testable import HearthELF
@testable import HearthSymbolizer

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

private func randomBytes(_ count: Int, _ random: inout SeededGenerator) -> [UInt8] {
    (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
}

/// `value` in lowercase (or uppercase) hex, zero-padded to `width` digits.
private func hex(_ value: UInt64, width: Int = 0, uppercase: Bool = false) -> String {
    let digits = String(value, radix: 16, uppercase: uppercase)
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
}

/// The lines of `bytes` as the parsers split them: at every `\n`, the last one possibly unterminated.
private func lines(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
    var result = bytes.split(separator: 0x0a, omittingEmptySubsequences: false)
    if bytes.last == 0x0a {
        result.removeLast()
    }
    return result
}

/// Invariant violations over many iterations, kept to the first few (with the iteration that reproduces each), so a
/// bug found in thousands of inputs fails the test once, with a replayable seed.
private struct Violations {
    private(set) var count = 0
    private(set) var first: [String] = []

    mutating func check(_ condition: Bool, _ message: @autoclosure () -> String) {
        guard !condition else {
            return
        }
        self.count += 1
        if self.first.count < 5 {
            self.first.append(message())
        }
    }

    var report: String { "\(self.count) violations; first: \(self.first.joined(separator: " | "))" }
}

/// A scratch file the tests rewrite for each input.
private final class ScratchFile {
    let path: String

    init() {
        self.path =
            FileManager.default.temporaryDirectory
            .appendingPathComponent("hearth-parser-fuzz-\(UUID().uuidString)").path
    }

    deinit { try? FileManager.default.removeItem(atPath: self.path) }

    /// Replaces the file's content (with plain `write`: Foundation's `Data.write` syncs, at milliseconds a file).
    func write(_ bytes: [UInt8]) throws {
        let descriptor = open(self.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw CocoaError(.fileWriteUnknown)
        }
        defer { close(descriptor) }
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes {
                Glibc.write(descriptor, $0.baseAddress! + written, bytes.count - written)
            }
            guard count > 0 else {
                throw CocoaError(.fileWriteUnknown)
            }
            written += count
        }
    }
}

// MARK: - Perf maps

/// Spelled into the names of lines longer than the line limit: such a name must never reach a table.
private let overLongMarker = "@@OVERLONG@@"

/// Names runtimes write into perf maps, and a few that aren't.
private let perfMapNames = [
    "Interpreter", "LazyCompile:*fib /app/server.js:12:3", "java.lang.String::hashCode", "[unknown] (native)",
    "__libc_like_name", "Ünïcödé_名前", "name@with@ats", "stub<>{}()[]", "py::handler:/srv/app.py", "a",
]

/// A perf map's text and what is known about it.
private struct PerfMapText {
    var bytes: [UInt8] = []
    /// Addresses to look up: every generated line's start, its neighbours and its end.
    var probes: [UInt64] = []
    /// A valid line whose symbol must be found (with the limits the text was made for).
    var known: (start: UInt64, name: String)?
    /// A valid line exactly `maximumLineBytes` long, which must be kept.
    var exact: (start: UInt64, name: String)?
}

/// A hex number as perf map writers print it: with or without `0x`/`0X`, either case, sometimes zero-padded.
private func perfMapHex(_ value: UInt64, _ random: inout SeededGenerator) -> String {
    let digits = hex(value, width: below(4, &random) == 0 ? 16 : 0, uppercase: below(2, &random) == 0)
    switch below(3, &random) {
    case 0: return "0x" + digits
    case 1: return "0X" + digits
    default: return digits
    }
}

/// Generates `count` perf map lines, valid or damaged: random bytes, NULs, missing fields, numbers of more than 16
/// digits, over-long lines, CRLF endings, empty lines; the known line sits at `knownAt` (or nowhere).
private func makePerfMap(
    lines count: Int,
    knownAt: Int?,
    maximumLineBytes: Int,
    _ random: inout SeededGenerator
) -> PerfMapText {
    var text = PerfMapText()
    for index in 0..<count {
        if index == knownAt {
            let start = 0x7f00_0000_0000 + UInt64(index) << 12
            let name = "known_\(index)"
            text.known = (start, name)
            text.probes += [start, start + 0x7f, start + 0x80]
            text.bytes += Array("\(perfMapHex(start, &random)) \(perfMapHex(0x80, &random)) \(name)\n".utf8)
        }
        var start = 0x1000 + random.next() % 0x100_0000
        let sizes: [UInt64] = [0, 1, 0x10, random.next() % 0x1000, random.next() % 0x10_0000]
        let size = pick(sizes, &random)
        let name = pick(perfMapNames, &random) + "_\(index)"
        var line = Array("\(perfMapHex(start, &random)) \(perfMapHex(size, &random)) \(name)".utf8)
        var terminator: [UInt8] = [0x0a]
        switch below(20, &random) {
        case 0:
            line = randomBytes(below(80, &random), &random)
        case 1:
            for _ in 0..<(1 + below(3, &random)) {
                line.insert(0, at: below(line.count + 1, &random))
            }
        case 2:
            // A missing name, size, or both.
            line = Array(
                pick(["\(hex(start)) \(hex(size))", "\(hex(start))", "\(hex(start)) ", " \(name)"], &random).utf8
            )
        case 3:
            let huge = String(repeating: pick(["f", "1", "0"], &random), count: 17 + below(40, &random))
            line = Array(pick(["\(huge) 10 \(name)", "\(hex(start)) \(huge) \(name)", "0x\(huge) 1 x"], &random).utf8)
        case 4:
            // Valid, but reaching past the end of the address space.
            line = Array("ffffffffffff\(hex(random.next() % 0x10000, width: 4)) \(hex(random.next())) \(name)".utf8)
        case 5:
            // Longer than the limit, and valid otherwise.
            start = 0x2000_0000 + UInt64(index) << 12
            let head = "\(hex(start)) 100 \(overLongMarker)"
            let padding = maximumLineBytes + 1 + below(300, &random) - head.utf8.count
            line = Array((head + String(repeating: "x", count: max(0, padding))).utf8)
        case 6:
            terminator = [0x0d, 0x0a]
        case 7:
            line = Array("0 10 \(name)".utf8)
        case 8:
            line = Array(
                pick(["  \(hex(start))   \(hex(size))    \(name)", "\(hex(start))\t\(hex(size))\t\(name)"], &random)
                    .utf8
            )
        case 9:
            line = []
        case 10 where text.exact == nil:
            // Exactly as long as the limit: kept.
            start = 0x3000_0000 + UInt64(index) << 12
            let head = "\(hex(start)) 100 exact_\(index)_"
            let name = "exact_\(index)_" + String(repeating: "y", count: max(0, maximumLineBytes - head.utf8.count))
            line = Array("\(hex(start)) 100 \(name)".utf8)
            if line.count == maximumLineBytes {
                text.exact = (start, name)
            }
        case 11:
            for _ in 0..<(1 + below(4, &random)) where !line.isEmpty {
                line[below(line.count, &random)] ^= UInt8(truncatingIfNeeded: random.next() | 1)
            }
        default:
            break
        }
        let probes: [UInt64] = [start, start &- 1, start &+ size, start &+ size &- 1, start &+ size / 2]
        text.probes += probes
        text.bytes += line + terminator
    }
    if below(4, &random) == 0, text.bytes.last == 0x0a {
        text.bytes.removeLast()
    }
    return text
}

/// Where to cut a text into chunks: nowhere, every few bytes, anywhere, around the newlines, or in large pieces.
private func randomCuts(_ bytes: [UInt8], _ random: inout SeededGenerator) -> [Int] {
    let count = bytes.count
    switch below(5, &random) {
    case 0:
        return []
    case 1:
        // Byte by byte (or nearly) for small texts; in small pieces for those with kilobyte lines.
        let step = 1 + below(count < 2048 ? 17 : 512, &random)
        return Array(stride(from: step, to: count, by: step))
    case 2:
        return (0..<(1 + below(24, &random))).map { _ in below(count + 1, &random) }.sorted()
    case 3:
        return bytes.indices.filter { bytes[$0] == 0x0a }.map { max(0, $0 + below(3, &random) - 1) }.sorted()
    default:
        var cuts: [Int] = []
        var next = 1 + below(4096, &random)
        while next < count {
            cuts.append(next)
            next += 1 + below(4096, &random)
        }
        return cuts
    }
}

/// What a reader made of one text.
private struct PerfMapOutcome {
    var table: SymbolTable
    var truncated: Bool
    var malformedLines: Int
    var bytesRead: Int
    /// Functions parsed before ``PerfMapReader/finish()`` (a last line without a newline adds one at most).
    var parsed: Int
}

/// Feeds `bytes` to a reader in the chunks `cuts` make, alternating slices and arrays.
private func readPerfMap(_ bytes: [UInt8], cuts: [Int], limits: PerfMapReader.Limits) -> PerfMapOutcome {
    var reader = PerfMapReader(limits: limits)
    var from = 0
    for (index, cut) in (cuts + [bytes.count]).enumerated() where cut >= from {
        if index % 2 == 0 {
            reader.feed(bytes[from..<cut])
        } else {
            reader.feed(Array(bytes[from..<cut]))
        }
        from = cut
    }
    let parsed = reader.count
    let table = reader.finish()
    return PerfMapOutcome(
        table: table,
        truncated: reader.truncated,
        malformedLines: reader.malformedLines,
        bytesRead: reader.bytesRead,
        parsed: parsed
    )
}

/// What a table answers: its size, every entry's name, the entry each probe falls in, and what `lookup` says there.
private struct TableAnswers: Equatable {
    var count: Int
    var names: [String?]
    var indices: [Int?]
    /// `lookup`'s answer for the first probe in each entry found (names are read from the table one at a time).
    var lookups: [Int: String]

    init(_ table: SymbolTable, probes: [UInt64]) {
        self.count = table.count
        self.names = (0..<table.count).map { table.name(at: $0) }
        self.indices = probes.map { table.index(containing: $0) }
        self.lookups = [:]
        for (probe, index) in zip(probes, self.indices) {
            guard let index, self.lookups[index] == nil else {
                continue
            }
            self.lookups[index] = table.lookup(probe).map { "\(hex($0.start)) \($0.name)" } ?? "unnamed"
        }
    }
}

/// Reads `path` as the symbolizer does: opened as a workload file, read in 64 KiB pieces.
private func readPerfMapFile(_ path: String, limits: PerfMapReader.Limits) throws -> PerfMapOutcome {
    let file = try WorkloadFile.open(path, inRoot: "/")
    let (table, truncated, malformed) = PerfMapReader.read(file, limits: limits)
    return PerfMapOutcome(table: table, truncated: truncated, malformedLines: malformed, bytesRead: -1, parsed: -1)
}

// MARK: - /proc/PID/maps

/// Paths as the kernel prints them: files (with spaces, non-ASCII), pseudo-paths, named anonymous memory, none.
private let mapsPaths = [
    "/usr/lib/x86_64-linux-gnu/libc.so.6", "/app/bin/server", "/opt/my app/lib with spaces.so",
    "/usr/lib/jvm/java-17/lib/server/libjvm.so", "[vdso]", "[vvar]", "[heap]", "[stack]", "[vsyscall]",
    "[anon:dalvik-main space]", "[anon:v8]", "", "", "memfd:jit-cache", "/dev/zero", "/SYSV00000000",
    "/tmp/ünïcödé/名前.so", "/data/a (deleted) b.so",
]

/// A maps text and the mappings of its lines that were left intact.
private struct MapsText {
    var bytes: [UInt8] = []
    var intact: [MemoryMapping] = []
    var damagedLines = 0
}

/// One line of `/proc/PID/maps` as the kernel formats it (the path padded to column 73, or a single space).
private func mapsLine(_ mapping: MemoryMapping, _ random: inout SeededGenerator) -> String {
    let perms =
        (mapping.isReadable ? "r" : "-") + (mapping.isWritable ? "w" : "-") + (mapping.isExecutable ? "x" : "-")
        + pick(["p", "s"], &random)
    let width = mapping.start > 0xffff_ffff ? 12 : 8
    var line =
        "\(hex(mapping.start, width: width))-\(hex(mapping.end, width: width)) \(perms) "
        + "\(hex(mapping.fileOffset, width: 8)) \(hex(UInt64(mapping.deviceMajor), width: 2)):"
        + "\(hex(UInt64(mapping.deviceMinor), width: 2)) \(mapping.inode)"
    if mapping.path.isEmpty {
        line += pick(["", " ", "    "], &random)
    } else {
        line += String(repeating: " ", count: below(2, &random) == 0 ? max(1, 73 - line.utf8.count) : 1)
        line += mapping.path + (mapping.isDeleted ? " (deleted)" : "")
    }
    return line
}

/// Generates `count` mappings, most of them valid, some damaged: random bytes, cut lines, NULs, numbers of more
/// than 16 digits, start ≥ end, bad devices and inodes, short permissions, CRLF, tabs, empty lines.
private func makeMaps(lines count: Int, damage: Bool, _ random: inout SeededGenerator) -> MapsText {
    var text = MapsText()
    var next: UInt64 = below(2, &random) == 0 ? 0x40_0000 : 0x7f12_3456_0000
    var rendered: [(line: [UInt8], terminator: [UInt8])] = []
    for _ in 0..<count {
        let start = next
        let end = start + UInt64(1 + below(64, &random)) << 12
        next = end + UInt64(below(4, &random)) << 12
        let path = pick(mapsPaths, &random)
        let isFile = path.hasPrefix("/") || path.hasPrefix("memfd:")
        let mapping = MemoryMapping(
            start: start,
            end: end,
            isReadable: below(4, &random) != 0,
            isWritable: below(2, &random) == 0,
            isExecutable: below(3, &random) == 0,
            fileOffset: isFile ? UInt64(below(0x1000, &random)) << 12 : 0,
            deviceMajor: isFile ? UInt32(below(0x1000, &random)) : 0,
            deviceMinor: isFile ? UInt32(below(0x10_0000, &random)) : 0,
            inode: isFile ? random.next() >> UInt64(20 + below(44, &random)) : 0,
            path: path,
            isDeleted: isFile && below(5, &random) == 0
        )
        var line = Array(mapsLine(mapping, &random).utf8)
        var terminator: [UInt8] = [0x0a]
        var damaged = damage
        let hexStart = hex(mapping.start)
        let rest = " r-xp 00000000 08:01 42 /lib/x.so"
        switch damage ? below(24, &random) : -1 {
        case 0: line = randomBytes(below(120, &random), &random)
        case 1: line.removeLast(below(line.count, &random))
        case 2:
            for _ in 0..<(1 + below(3, &random)) {
                line.insert(0, at: below(line.count + 1, &random))
            }
        case 3:
            let huge = String(repeating: pick(["f", "1"], &random), count: 17 + below(20, &random))
            line = Array(pick(["\(huge)-\(hexStart)\(rest)", "\(hexStart)-\(huge)\(rest)"], &random).utf8)
        case 4:
            let end = pick([mapping.start, mapping.start - 1, 0], &random)
            line = Array("\(hexStart)-\(hex(end))\(rest)".utf8)
        case 5:
            let device = pick(["0801", "fffffffff:00", "08:1ffffffff", ":", "08:", "zz:01"], &random)
            line = Array("\(hexStart)-\(hex(mapping.end)) r-xp 0 \(device) 42 /lib/x.so".utf8)
        case 6:
            let inode = pick(["99999999999999999999999", "-1", "0x10", "abc", "18446744073709551616"], &random)
            line = Array("\(hexStart)-\(hex(mapping.end)) r-xp 0 08:01 \(inode) /lib/x.so".utf8)
        case 7:
            line = Array("\(hexStart)-\(hex(mapping.end)) \(pick(["r", "rw", "-"], &random)) 0 08:01 42 /x".utf8)
        case 8: terminator = [0x0d, 0x0a]
        case 9:
            for _ in 0..<(1 + below(4, &random)) where !line.isEmpty {
                line[below(line.count, &random)] ^= UInt8(truncatingIfNeeded: random.next() | 1)
            }
        case 10: line = Array(pick(["", " ", "   "], &random).utf8)
        case 11: line = line.map { $0 == 0x20 ? 0x09 : $0 }
        case 12: line = Array("\(hexStart)-\(hex(mapping.end)) r-xp 0 08:01".utf8)
        default: damaged = false
        }
        if damaged {
            text.damagedLines += 1
        } else {
            text.intact.append(mapping)
        }
        rendered.append((line, terminator))
    }
    // The kernel writes mappings in address order; a file need not.
    if below(4, &random) == 0 {
        rendered.shuffle(using: &random)
    }
    for (line, terminator) in rendered {
        text.bytes += line + terminator
    }
    if below(4, &random) == 0, text.bytes.last == 0x0a {
        text.bytes.removeLast()
    }
    return text
}

/// Mappings in a total order, to compare lists as multisets.
private func canonical(_ mappings: [MemoryMapping]) -> [MemoryMapping] {
    mappings.sorted { a, b in
        if (a.start, a.end, a.fileOffset, a.inode) != (b.start, b.end, b.fileOffset, b.inode) {
            return (a.start, a.end, a.fileOffset, a.inode) < (b.start, b.end, b.fileOffset, b.inode)
        }
        return "\(a)" < "\(b)"
    }
}

/// Whether every element of `part` is in `whole`, counted with multiplicity.
private func isSubmultiset(_ part: [MemoryMapping], of whole: [MemoryMapping]) -> Bool {
    var counts: [MemoryMapping: Int] = [:]
    for mapping in whole {
        counts[mapping, default: 0] += 1
    }
    for mapping in part {
        guard let count = counts[mapping], count > 0 else {
            return false
        }
        counts[mapping] = count - 1
    }
    return true
}

private func isSortedWithRanges(_ mappings: [MemoryMapping]) -> Bool {
    mappings.allSatisfy { $0.start < $0.end } && zip(mappings, mappings.dropFirst()).allSatisfy { $0.start <= $1.start }
}

/// The mappings of `bytes` in file order (`parse` sorts them).
private func mappingsInFileOrder(_ bytes: [UInt8]) -> [MemoryMapping] {
    lines(bytes).compactMap { ProcMaps.parseLine($0) }
}

/// Filters `read`'s `keep` closure may be given.
private let keepFilters: [(name: String, keep: @Sendable (MemoryMapping) -> Bool)] = [
    ("all", { _ in true }),
    ("executable", { $0.isExecutable }),
    ("file", { $0.kind == .file }),
    ("anonymous", { $0.isAnonymousMemory }),
    ("none", { _ in false }),
]

@Suite("Workload parsers on hostile input")
struct WorkloadParserFuzzTests {
    // MARK: Perf maps

    @Test("mutated perf maps give the same table whatever the chunking, from memory or a file")
    func perfMapChunkings() throws {
        let started = ContinuousClock.now
        let limits = PerfMapReader.Limits()
        let scratch = ScratchFile()
        var violations = Violations()
        var parsedFunctions = 0
        var malformedLines = 0
        var truncatedMaps = 0
        let iterations = 800
        for iteration in 0..<iterations {
            var random = SeededGenerator.iteration(iteration, of: 0x5045_5246_4d41_50)
            let lineCount = below(48, &random)
            let text = makePerfMap(
                lines: lineCount,
                knownAt: below(lineCount + 1, &random),
                maximumLineBytes: limits.maximumLineBytes,
                &random
            )
            let whole = readPerfMap(text.bytes, cuts: [], limits: limits)
            let answers = TableAnswers(whole.table, probes: text.probes)
            let seed = "iteration \(iteration)"
            parsedFunctions += whole.table.count
            malformedLines += whole.malformedLines
            truncatedMaps += whole.truncated ? 1 : 0

            // The same bytes in other chunks give the same table and the same counts.
            for _ in 0..<2 {
                let cuts = randomCuts(text.bytes, &random)
                let chunked = readPerfMap(text.bytes, cuts: cuts, limits: limits)
                violations.check(
                    TableAnswers(chunked.table, probes: text.probes) == answers,
                    "\(seed): the table differs when cut at \(cuts.prefix(12))"
                )
                violations.check(
                    (chunked.truncated, chunked.malformedLines, chunked.bytesRead)
                        == (whole.truncated, whole.malformedLines, whole.bytesRead),
                    "\(seed): truncated/malformed/bytesRead differ when cut at \(cuts.prefix(12))"
                )
            }
            violations.check(whole.bytesRead == text.bytes.count, "\(seed): read \(whole.bytesRead) bytes")

            // Lines over the limit are skipped whole (and only they make a small map truncated).
            let overLong = lines(text.bytes).contains { $0.count > limits.maximumLineBytes }
            violations.check(
                whole.truncated == overLong,
                "\(seed): truncated \(whole.truncated), over-long \(overLong)"
            )
            for name in answers.names {
                guard let name else { continue }
                // A byte becomes at most one scalar (invalid UTF-8 one U+FFFD each).
                violations.check(
                    !name.contains(overLongMarker) && name.unicodeScalars.count <= limits.maximumLineBytes,
                    "\(seed): the name of an over-long line is in the table: \(name.prefix(40))"
                )
            }

            // Known lines are found.
            if let known = text.known {
                let found = whole.table.lookup(known.start)
                violations.check(
                    found?.name == known.name && found?.start == known.start,
                    "\(seed): \(known.name) not found, got \(String(describing: found))"
                )
            }
            if let exact = text.exact {
                violations.check(
                    whole.table.lookup(exact.start)?.name == exact.name,
                    "\(seed): a line of exactly maximumLineBytes was not kept"
                )
            }

            // Read from a file as the symbolizer reads a workload's map: the same answers.
            if iteration % 8 == 0 {
                try scratch.write(text.bytes)
                let file = try readPerfMapFile(scratch.path, limits: limits)
                violations.check(
                    TableAnswers(file.table, probes: text.probes) == answers
                        && file.truncated == whole.truncated && file.malformedLines == whole.malformedLines,
                    "\(seed): PerfMapReader.read of a file differs from the bytes fed in memory"
                )
            }
        }
        print(
            "Perf map fuzzing: \(iterations) maps, \(parsedFunctions) functions, \(malformedLines) malformed lines, "
                + "\(truncatedMaps) truncated, in \(ContinuousClock.now - started)"
        )
        #expect(violations.count == 0, "\(violations.report)")
        // Every outcome must occur, or the mutations aren't reaching the parser.
        #expect(parsedFunctions > 10_000)
        #expect(malformedLines > 1000)
        #expect(truncatedMaps > 100)
    }

    @Test("with small limits a perf map is cut short, flagged truncated, and reads no more than its limit")
    func perfMapLimits() throws {
        let started = ContinuousClock.now
        var limits = PerfMapReader.Limits()
        limits.maximumFileBytes = 4096
        limits.maximumTableBytes = 2048
        limits.maximumLineBytes = 256
        var unlimitedTable = limits
        unlimitedTable.maximumTableBytes = .max
        // Entries are added while the builder holds less than the limit: 24 bytes each at least.
        let mostFunctions = limits.maximumTableBytes / 24 + 1
        let scratch = ScratchFile()
        var violations = Violations()
        var overFile = 0
        var overTable = 0
        let iterations = 600
        for iteration in 0..<iterations {
            var random = SeededGenerator.iteration(iteration, of: 0x4c49_4d49_5453)
            let text = makePerfMap(
                lines: below(200, &random),
                knownAt: 0,
                maximumLineBytes: limits.maximumLineBytes,
                &random
            )
            let seed = "iteration \(iteration)"
            let limited = readPerfMap(text.bytes, cuts: randomCuts(text.bytes, &random), limits: limits)
            let reference = readPerfMap(text.bytes, cuts: [], limits: unlimitedTable)

            violations.check(
                limited.bytesRead == min(text.bytes.count, limits.maximumFileBytes),
                "\(seed): read \(limited.bytesRead) of \(text.bytes.count) bytes"
            )
            if text.bytes.count > limits.maximumFileBytes {
                overFile += 1
                violations.check(limited.truncated, "\(seed): \(text.bytes.count) bytes, not flagged truncated")
            }
            violations.check(limited.parsed <= mostFunctions, "\(seed): \(limited.parsed) functions kept")
            if limited.parsed < reference.parsed || limited.table.count < reference.table.count {
                overTable += 1
                violations.check(limited.truncated, "\(seed): lines dropped at the table limit, not flagged truncated")
            }
            violations.check(
                limited.table.count <= reference.table.count,
                "\(seed): the limited table is larger than the unlimited one"
            )

            // Limits cut the same place whatever the chunking.
            let whole = readPerfMap(text.bytes, cuts: [], limits: limits)
            violations.check(
                TableAnswers(whole.table, probes: text.probes) == TableAnswers(limited.table, probes: text.probes)
                    && whole.truncated == limited.truncated,
                "\(seed): the limited table depends on the chunking"
            )
            for index in 0..<limited.table.count {
                let name = limited.table.name(at: index) ?? ""
                violations.check(
                    name.unicodeScalars.count <= limits.maximumLineBytes && !name.contains(overLongMarker),
                    "\(seed): a line over \(limits.maximumLineBytes) bytes is in the table"
                )
            }
            if let known = text.known {
                violations.check(
                    limited.table.lookup(known.start)?.name == known.name,
                    "\(seed): the first line's \(known.name) was not found"
                )
            }

            if iteration % 4 == 0 {
                try scratch.write(text.bytes)
                let file = try readPerfMapFile(scratch.path, limits: limits)
                violations.check(
                    TableAnswers(file.table, probes: text.probes) == TableAnswers(whole.table, probes: text.probes)
                        && file.truncated == whole.truncated,
                    "\(seed): PerfMapReader.read of a file differs from the bytes fed in memory"
                )
            }
        }
        print(
            "Perf map limits: \(iterations) maps, \(overFile) over the file limit, \(overTable) over the table limit, "
                + "in \(ContinuousClock.now - started)"
        )
        #expect(violations.count == 0, "\(violations.report)")
        #expect(overFile > 50)
        #expect(overTable > 50)
    }

    @Test("a line of maximumLineBytes is kept and one byte more is skipped, wherever the chunks are cut")
    func perfMapLineLimitAtEveryCut() {
        var limits = PerfMapReader.Limits()
        limits.maximumLineBytes = 64
        for length in 60...68 {
            let head = "1000 10 "
            let line = head + String(repeating: "n", count: length - head.utf8.count)
            for terminated in [true, false] {
                let text = "2000 10 before\n\(line)" + (terminated ? "\n3000 10 after\n" : "")
                let bytes = Array(text.utf8)
                let whole = readPerfMap(bytes, cuts: [], limits: limits)
                #expect((whole.table.lookup(0x1000) != nil) == (length <= 64), "length \(length)")
                #expect(whole.table.lookup(0x2000)?.name == "before")
                #expect(terminated == (whole.table.lookup(0x3000)?.name == "after"))
                #expect(whole.truncated == (length > 64))
                for first in 0...bytes.count {
                    for second in [first, first + 1, first + 7, bytes.count] where second <= bytes.count {
                        let chunked = readPerfMap(bytes, cuts: [first, second], limits: limits)
                        #expect(
                            TableAnswers(chunked.table, probes: [0x1000, 0x2000, 0x3000])
                                == TableAnswers(whole.table, probes: [0x1000, 0x2000, 0x3000]),
                            "length \(length), cut at \(first) and \(second)"
                        )
                        #expect(chunked.truncated == whole.truncated)
                    }
                }
            }
        }
    }

    @Test("a line maximumFileBytes cuts in two is not kept as if it were whole")
    func perfMapLineCutByFileLimit() {
        // The first 16 bytes are `1000 10 abcdefgh`: a name the map doesn't hold.
        var limits = PerfMapReader.Limits()
        limits.maximumFileBytes = 16
        var reader = PerfMapReader(limits: limits)
        reader.feed(Array("1000 10 abcdefghijklmnop\n".utf8))
        let table = reader.finish()
        #expect(reader.truncated)
        #expect(table.lookup(0x1000) == nil, "found \(String(describing: table.lookup(0x1000)))")

        // A line longer than maximumLineBytes, cut by the file limit below it, is still longer than the limit.
        limits.maximumFileBytes = 40
        limits.maximumLineBytes = 64
        var overLong = PerfMapReader(limits: limits)
        overLong.feed(Array(("1000 10 " + String(repeating: "x", count: 100) + "\n").utf8))
        let overLongTable = overLong.finish()
        #expect(overLong.truncated)
        #expect(overLongTable.count == 0, "found \(String(describing: overLongTable.lookup(0x1000)))")
    }

    // MARK: /proc/PID/maps

    @Test("mutated maps parse to sorted, non-empty mappings, and read(path:) agrees with parse")
    func mapsParseAndRead() throws {
        let started = ContinuousClock.now
        let scratch = ScratchFile()
        var violations = Violations()
        var parsedMappings = 0
        var damagedLines = 0
        var limitedReads = 0
        let iterations = 700
        for iteration in 0..<iterations {
            var random = SeededGenerator.iteration(iteration, of: 0x4d41_5053)
            let damage = iteration % 5 != 0
            let text = makeMaps(lines: below(60, &random), damage: damage, &random)
            let seed = "iteration \(iteration)"
            let parsed = ProcMaps.parse(text.bytes)
            parsedMappings += parsed.count
            damagedLines += text.damagedLines

            violations.check(isSortedWithRanges(parsed), "\(seed): parse gave unsorted or empty mappings")
            violations.check(parsed.count <= lines(text.bytes).count, "\(seed): more mappings than lines")
            violations.check(isSubmultiset(text.intact, of: parsed), "\(seed): an intact line's mapping is missing")
            if !damage {
                violations.check(canonical(parsed) == canonical(text.intact), "\(seed): valid maps parsed wrong")
            }
            let fileOrder = mappingsInFileOrder(text.bytes)
            violations.check(canonical(parsed) == canonical(fileOrder), "\(seed): parse lost or added mappings")

            // read(path:) on the same text, with no limit reached: the same mappings.
            try scratch.write(text.bytes)
            let longestLine = lines(text.bytes).map(\.count).max() ?? 0
            let read = try ProcMaps.read(path: scratch.path)
            violations.check(isSortedWithRanges(read.mappings), "\(seed): read gave unsorted or empty mappings")
            if longestLine <= 2 * Int(PATH_MAX) {
                violations.check(
                    !read.truncated && read.mappings == parsed,
                    "\(seed): read(path:) differs from parse (truncated \(read.truncated))"
                )
            }

            // The keep filter and the mapping limit.
            let filter = pick(keepFilters, &random)
            let kept = fileOrder.filter(filter.keep)
            let filtered = try ProcMaps.read(path: scratch.path, keep: filter.keep)
            violations.check(
                canonical(filtered.mappings) == canonical(kept) && isSortedWithRanges(filtered.mappings),
                "\(seed): read(keep: \(filter.name)) differs from parse filtered"
            )
            let limit = below(kept.count + 2, &random)
            let limited = try ProcMaps.read(path: scratch.path, maximumMappings: limit, keep: filter.keep)
            violations.check(isSortedWithRanges(limited.mappings), "\(seed): read gave unsorted or empty mappings")
            if kept.count > limit {
                limitedReads += 1
                violations.check(
                    limited.truncated && limited.mappings.count == limit,
                    "\(seed): \(kept.count) mappings kept by \(filter.name), maximumMappings \(limit): "
                        + "got \(limited.mappings.count), truncated \(limited.truncated)"
                )
                violations.check(
                    canonical(limited.mappings) == canonical(Array(kept.prefix(limit))),
                    "\(seed): maximumMappings \(limit) did not keep the first mappings"
                )
            } else if longestLine <= 2 * Int(PATH_MAX) {
                violations.check(
                    !limited.truncated && canonical(limited.mappings) == canonical(kept),
                    "\(seed): maximumMappings \(limit) ≥ \(kept.count) changed the result"
                )
            }
        }
        print(
            "Maps fuzzing: \(iterations) texts, \(parsedMappings) mappings, \(damagedLines) damaged lines, "
                + "\(limitedReads) reads over the mapping limit, in \(ContinuousClock.now - started)"
        )
        #expect(violations.count == 0, "\(violations.report)")
        #expect(parsedMappings > 10_000)
        #expect(damagedLines > 5000)
        #expect(limitedReads > 300)
    }

    @Test("read(path:maximumBytes:) keeps only mappings from the first maximumBytes of text")
    func mapsByteLimit() throws {
        let started = ContinuousClock.now
        var random = SeededGenerator(state: 0x4259_5445_53)
        let text = makeMaps(lines: 3000, damage: false, &random)
        let scratch = ScratchFile()
        try scratch.write(text.bytes)
        // Several 64 KiB reads' worth of text.
        #expect(text.bytes.count > 3 * 65536)
        var violations = Violations()
        let limits =
            [1, 100, 4096, 65535, 65536, 65537, 100_000, text.bytes.count - 1, text.bytes.count]
            + (0..<30).map { _ in 1 + below(text.bytes.count + 1000, &random) }
        for limit in limits {
            let read = try ProcMaps.read(path: scratch.path, maximumBytes: limit)
            violations.check(isSortedWithRanges(read.mappings), "limit \(limit): unsorted or empty mappings")
            if text.bytes.count > limit {
                violations.check(read.truncated, "limit \(limit): \(text.bytes.count) bytes, not flagged truncated")
                // Only whole lines within the limit may have been used.
                let within = text.bytes.prefix(limit)
                let usable = Array(within.prefix(through: within.lastIndex(of: 0x0a) ?? -1))
                let allowed = ProcMaps.parse(usable)
                violations.check(
                    isSubmultiset(read.mappings, of: allowed),
                    "limit \(limit): \(read.mappings.count) mappings returned, only \(allowed.count) lie in the "
                        + "first \(limit) bytes"
                )
            } else if text.bytes.count < limit {
                violations.check(
                    !read.truncated && read.mappings == ProcMaps.parse(text.bytes),
                    "limit \(limit): the whole text fits, yet the result differs from parse"
                )
            }
        }
        print(
            "Maps byte limits: \(limits.count) limits on \(text.bytes.count) bytes, in \(ContinuousClock.now - started)"
        )
        #expect(violations.count == 0, "\(violations.report)")
    }

    @Test("maximumMappings reached before a last line without a newline is reported truncated")
    func mapsLimitBeforeUnterminatedLastLine() throws {
        let scratch = ScratchFile()
        try scratch.write(Array("1000-2000 r-xp 00000000 00:00 0\n3000-4000 r-xp 00000000 00:00 0".utf8))
        let read = try ProcMaps.read(path: scratch.path, maximumMappings: 1)
        #expect(read.mappings.map(\.start) == [0x1000])
        #expect(read.truncated, "the second mapping was dropped without a word")
    }

    @Test("maximumBytes below one read's size still bounds the text used")
    func mapsByteLimitWithinOneRead() throws {
        // Two lines of 32 bytes: the first 32 bytes hold the first mapping only.
        let scratch = ScratchFile()
        try scratch.write(Array("1000-2000 r-xp 00000000 00:00 0\n3000-4000 r-xp 00000000 00:00 0\n".utf8))
        let read = try ProcMaps.read(path: scratch.path, maximumBytes: 32)
        #expect(read.truncated)
        #expect(read.mappings.map(\.start) == [0x1000])
    }

    @Test("a 100 KiB line ends the read (truncated) instead of growing the buffer, keeping the mappings before it")
    func mapsOverLongLine() throws {
        var random = SeededGenerator(state: 0x4c4f_4e47)
        let scratch = ScratchFile()
        for (trailing, newline) in [(false, false), (false, true), (true, true)] {
            let before = makeMaps(lines: 20, damage: false, &random)
            let after = makeMaps(lines: 20, damage: false, &random)
            var bytes = before.bytes
            if bytes.last != 0x0a {
                bytes.append(0x0a)
            }
            // A mapping line whose path never ends: 100 KiB.
            bytes += Array("7fff00000000-7fff00001000 r-xp 00000000 08:01 42 /".utf8)
            bytes += [UInt8](repeating: UInt8(ascii: "a"), count: 100 << 10)
            if newline {
                bytes.append(0x0a)
            }
            if trailing {
                bytes += after.bytes
            }
            try scratch.write(bytes)
            let read = try ProcMaps.read(path: scratch.path)
            #expect(read.truncated, "trailing \(trailing), newline \(newline)")
            #expect(read.mappings == ProcMaps.parse(before.bytes), "trailing \(trailing), newline \(newline)")
            // parse, which holds the whole text, does see the line.
            #expect(ProcMaps.parse(bytes).contains { $0.start == 0x7fff_0000_0000 })
        }
    }

    @Test("this process's own /proc/self/maps reads whole and sorted, with executable file mappings")
    func mapsOfThisProcess() throws {
        let read = try ProcMaps.read(path: "/proc/self/maps")
        #expect(!read.truncated)
        #expect(read.mappings.count > 10)
        #expect(isSortedWithRanges(read.mappings))
        #expect(read.mappings.contains { $0.kind == .file && $0.isExecutable })
        let parsed = ProcMaps.parse(try readWholeFile("/proc/self/maps"))
        #expect(isSortedWithRanges(parsed))
    }
}
