// CFIFuzzTests.swift: thousands of seeded mutations of real `.eh_frame` bytes (a gcc-built program, slices of
// libc, libstdc++ and libswiftCore): the compiler never traps, allocates within the section's size, keeps its
// rows sorted, and accounts for every FDE it finds as compiled or malformed.

import Foundation
import HearthELF
import HearthTestSupport
import Testing

@testable import HearthUnwind

/// Values that break naive arithmetic.
private func nastyValue(_ random: inout SeededGenerator, size: Int) -> UInt64 {
    switch random.next() % 8 {
    case 0: return UInt64.max
    case 1: return 0xffff_fff0 + random.next() % 16
    case 2: return UInt64(size) + random.next() % 8
    case 3: return 0
    case 4: return UInt64(UInt32.max)
    case 5: return 1 << (random.next() % 64)
    case 6: return UInt64(Int64.max)
    default: return random.next()
    }
}

private func poke(_ bytes: inout [UInt8], _ offset: Int, _ value: UInt64, width: Int) {
    guard offset >= 0, offset <= bytes.count - width else { return }
    for i in 0..<width {
        bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))
    }
}

/// One mutation of a `.eh_frame` image; `entries` are the original's entry offsets.
private func mutate(_ original: [UInt8], entries: [Int], _ random: inout SeededGenerator) -> [UInt8] {
    var bytes = original
    for _ in 0..<(1 + random.next() % 3) where !bytes.isEmpty {
        let entry = entries.isEmpty ? 0 : entries[Int(random.next() % UInt64(entries.count))]
        switch random.next() % 8 {
        case 0:
            bytes.removeLast(Int(random.next() % UInt64(bytes.count)))
        case 1:
            for _ in 0..<(1 + random.next() % 8) where !bytes.isEmpty {
                bytes[Int(random.next() % UInt64(bytes.count))] ^= UInt8(truncatingIfNeeded: random.next() | 1)
            }
        case 2:
            // An entry's length (32-bit, or the 64-bit escape).
            poke(&bytes, entry, nastyValue(&random, size: bytes.count), width: random.next() % 4 == 0 ? 12 : 4)
        case 3:
            // The CIE id / CIE pointer.
            poke(&bytes, entry + 4, nastyValue(&random, size: bytes.count), width: 4)
        case 4:
            // FDE start and length, or CIE version, augmentation and factors.
            poke(&bytes, entry + 8 + Int(random.next() % 8), nastyValue(&random, size: bytes.count), width: 4)
        case 5:
            // An opcode anywhere in the entry's body: unknown ones, escapes with long operands, state stack ops.
            let opcodes: [UInt8] = [0x0a, 0x0b, 0x0f, 0x10, 0x16, 0x01, 0x04, 0x2d, 0x1f, 0x3f, 0x2f, 0xff, 0x80]
            let offset = entry + 12 + Int(random.next() % 24)
            if offset < bytes.count {
                bytes[offset] = opcodes[Int(random.next() % UInt64(opcodes.count))]
            }
        case 6:
            // A run of LEB128 continuation bytes.
            let start = Int(random.next() % UInt64(bytes.count))
            for i in start..<min(bytes.count, start + 1 + Int(random.next() % 16)) {
                bytes[i] = 0x80 | UInt8(truncatingIfNeeded: random.next())
            }
        default:
            let start = Int(random.next() % UInt64(bytes.count))
            for i in start..<min(bytes.count, start + 1 + Int(random.next() % 32)) {
                bytes[i] = UInt8(truncatingIfNeeded: random.next())
            }
        }
    }
    return bytes
}

/// The offsets of every entry a linear walk finds in `bytes`.
private func entryOffsets(_ section: CFISection) -> [Int] {
    var offsets: [Int] = []
    var offset = 0
    while offset < section.data.count, let header = try? section.entryHeader(at: offset) {
        offsets.append(offset)
        offset = header.end
    }
    return offsets
}

/// Compiles `bytes` both by walking and through `fdeOffsets`, and checks the invariants. Returns the walked
/// table's statistics.
private func compileAndCheck(_ bytes: [UInt8], fdeOffsets: [Int]) -> UnwindTable.Statistics {
    let section = CFISection(
        data: ELFBytes(bytes: bytes, littleEndian: true),
        flavor: .ehFrame,
        bases: PointerBases(section: 0x10_0000, text: 0x1000, data: 0x20_0000)
    )
    let walk = section.walkFDEs()
    var walked = CFICompiler(codeRanges: [], logger: nil)
    walked.add(section)
    let (rows, range) = walked.finish()
    var indexed = CFICompiler(codeRanges: [], logger: nil)
    indexed.add(section, fdeOffsets: fdeOffsets)
    let (indexedRows, _) = indexed.finish()

    for (statistics, compiled, found) in [
        (walked.statistics, rows, walk.fdes.count + (walk.stoppedEarly == nil ? 0 : 1)),
        (indexed.statistics, indexedRows, fdeOffsets.count),
    ] {
        // Every FDE found is compiled, counted as malformed, or counted as a duplicate entry of the header's table
        // (compiled once).
        #expect(statistics.fdes + statistics.malformedFDEs + statistics.duplicateFDEEntries == found)
        // Sorted, de-duplicated, and bounded by the section's size.
        #expect(zip(compiled, compiled.dropFirst()).allSatisfy { $0.address < $1.address && $0.rule != $1.rule })
        #expect(compiled.count <= bytes.count)
        #expect(statistics.rows == compiled.count)
        #expect(statistics.unsupportedRows <= compiled.count)
    }
    for row in rows {
        #expect(range.contains(row.address) || row.address == range.upperBound)
        #expect(row.encoded(base: range.lowerBound) != nil)
    }
    // Read in pieces (as from a file), both ways give the same table as the section held whole.
    for (offsets, whole, wholeRows) in [(nil, walked.statistics, rows), (fdeOffsets, indexed.statistics, indexedRows)] {
        for pieceBytes in [1, 61] {
            var reader = piecewiseReader(bytes, pieceBytes: pieceBytes, bases: section.bases)
            var compiler = CFICompiler(codeRanges: [], logger: nil)
            compiler.add(&reader, fdeOffsets: offsets)
            #expect(compiler.finish().rows == wholeRows)
            // Everything but the bytes held at once is the same.
            var statistics = compiler.statistics
            statistics.largestCFIPieceBytes = whole.largestCFIPieceBytes
            #expect(statistics == whole)
        }
    }
    return walked.statistics
}

/// A reader of `bytes` as if from a file, `pieceBytes` at a time.
func piecewiseReader(_ bytes: [UInt8], pieceBytes: Int, bases: PointerBases) -> CFISectionReader {
    CFISectionReader(
        size: bytes.count,
        flavor: .ehFrame,
        bases: bases,
        pieceBytes: pieceBytes,
        maximumEntryBytes: .max
    ) { range in Array(bytes[range]) }
}

@Suite("CFI compiler on hostile input")
struct CFIFuzzTests {
    /// `.eh_frame` images to mutate: a gcc-built program's whole section, and the first 6 KiB of three
    /// real libraries' (a prefix cut mid-entry is itself a truncation case).
    private static func originals() throws -> [[UInt8]] {
        let program = try CompiledProgram.get()
        var images: [[UInt8]] = []
        for (path, limit) in [
            (program.executable, Int.max), (SystemLibraries.libc, 6144), (SystemLibraries.libstdcxx, 6144),
            (SystemLibraries.libswiftCore, 6144),
        ] {
            let elf = try ELFFile(path: path)
            let section = try #require(elf.section(named: ".eh_frame"))
            images.append(Array(try elf.data(of: section).prefix(limit)))
        }
        return images
    }

    @Test("thousands of mutated .eh_frame sections compile or count as malformed, never trap")
    func mutatedSections() throws {
        let started = ContinuousClock.now
        var random = SeededGenerator(state: 0x4548_4652_414d_45)
        var iterations = 0
        var malformed = 0
        var compiledFDEs = 0
        let mutationsPerImage = 750
        for original in try Self.originals() {
            let section = CFISection(
                data: ELFBytes(bytes: original, littleEndian: true),
                flavor: .ehFrame,
                bases: PointerBases(section: 0x10_0000)
            )
            let entries = entryOffsets(section)
            let fdeOffsets = section.walkFDEs().fdes.map(\.offset)
            let baseline = compileAndCheck(original, fdeOffsets: fdeOffsets)
            #expect(baseline.fdes > 0)
            for _ in 0..<mutationsPerImage {
                let mutated = mutate(original, entries: entries, &random)
                // The index of the original, plus a few hostile offsets, as a damaged .eh_frame_hdr would give.
                let hostile = [Int.max, mutated.count, -1, Int(random.next() % UInt64(max(1, mutated.count)))]
                let statistics = compileAndCheck(mutated, fdeOffsets: fdeOffsets + hostile)
                malformed += statistics.malformedFDEs
                compiledFDEs += statistics.fdes
                iterations += 1
            }
        }
        print(
            "CFI fuzzing: \(iterations) mutated sections, \(compiledFDEs) FDEs compiled, \(malformed) malformed, in \(ContinuousClock.now - started)"
        )
        #expect(iterations >= 3000)
        // Both outcomes must occur, or the mutations aren't reaching the parser.
        #expect(malformed > 500)
        #expect(compiledFDEs > 10_000)
    }

    @Test("every truncation of a small .eh_frame is handled")
    func everyTruncation() throws {
        let original = try #require(try Self.originals().first)
        var length = 0
        while length <= original.count {
            let prefix = Array(original.prefix(length))
            _ = compileAndCheck(prefix, fdeOffsets: [0, 4, 8, 16, 24])
            length += 1
        }
    }
}
