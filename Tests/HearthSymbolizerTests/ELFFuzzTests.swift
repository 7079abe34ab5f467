// ELFFuzzTests.swift: the ELF reader and the lazily named symbol tables on hostile input: thousands of seeded
// truncations and mutations, in memory and through pread, give errors and never trap.

import Foundation
import HearthTestSupport
import Testing

@testable import HearthELF
@testable import HearthSymbolizer

/// Writes `value` little-endian into `bytes` at `offset`, if it fits.
private func poke(_ bytes: inout [UInt8], _ offset: Int, _ value: UInt64, width: Int) {
    guard offset >= 0, offset <= bytes.count - width else {
        return
    }
    for i in 0..<width {
        bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))
    }
}

private func peek(_ bytes: [UInt8], _ offset: Int, width: Int) -> UInt64 {
    guard offset >= 0, offset <= bytes.count - width else {
        return 0
    }
    var value: UInt64 = 0
    for i in 0..<width {
        value |= UInt64(bytes[offset + i]) << (8 * UInt64(i))
    }
    return value
}

/// Values that break naive arithmetic: huge, just-past-the-end, sign-bit, all ones.
private func nastyValue(_ random: inout SeededGenerator, fileSize: Int) -> UInt64 {
    switch random.next() % 9 {
    case 0: return UInt64.max
    case 1: return UInt64.max - UInt64(random.next() % 64)
    case 2: return UInt64(Int64.max)
    case 3: return UInt64(fileSize)
    case 4: return UInt64(fileSize) + UInt64(random.next() % 4096)
    case 5: return UInt64(UInt32.max)
    case 6: return 0
    case 7: return 1 << (random.next() % 64)
    default: return random.next()
    }
}

/// One mutation of an ELF64 little-endian image: truncation, byte flips, or a header, program header,
/// section header or symbol field set to a hostile value.
private func mutate(_ original: [UInt8], _ random: inout SeededGenerator) -> [UInt8] {
    var bytes = original
    let shoff = Int(clamping: peek(bytes, 40, width: 8))
    let shnum = Int(peek(bytes, 60, width: 2))
    let phoff = Int(clamping: peek(bytes, 32, width: 8))
    let phnum = Int(peek(bytes, 56, width: 2))
    let rounds = 1 + Int(random.next() % 3)
    for _ in 0..<rounds {
        switch random.next() % 8 {
        case 0:
            // Truncate anywhere, biased towards the headers.
            let limit = random.next() % 2 == 0 ? min(bytes.count, 4096) : bytes.count
            bytes.removeLast(bytes.count - Int(random.next() % UInt64(max(1, limit))))
        case 1:
            // Flip a handful of random bytes.
            for _ in 0..<(1 + random.next() % 16) where !bytes.isEmpty {
                bytes[Int(random.next() % UInt64(bytes.count))] ^= UInt8(truncatingIfNeeded: random.next() | 1)
            }
        case 2:
            // ELF header: e_phoff, e_shoff, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx, e_ident.
            let fields: [(Int, Int)] = [(32, 8), (40, 8), (54, 2), (56, 2), (58, 2), (60, 2), (62, 2), (4, 1), (5, 1)]
            let (offset, width) = fields[Int(random.next() % UInt64(fields.count))]
            poke(&bytes, offset, nastyValue(&random, fileSize: bytes.count), width: width)
        case 3 where shnum > 0:
            // A section header field: sh_name, sh_type, sh_addr, sh_offset, sh_size, sh_link, sh_entsize.
            let section = Int(random.next() % UInt64(shnum))
            let fields: [(Int, Int)] = [(0, 4), (4, 4), (16, 8), (24, 8), (32, 8), (40, 4), (56, 8)]
            let (offset, width) = fields[Int(random.next() % UInt64(fields.count))]
            poke(&bytes, shoff &+ section &* 64 &+ offset, nastyValue(&random, fileSize: bytes.count), width: width)
        case 4 where phnum > 0:
            // A program header field: p_type, p_offset, p_vaddr, p_filesz.
            let header = Int(random.next() % UInt64(phnum))
            let fields: [(Int, Int)] = [(0, 4), (8, 8), (16, 8), (32, 8)]
            let (offset, width) = fields[Int(random.next() % UInt64(fields.count))]
            poke(&bytes, phoff &+ header &* 56 &+ offset, nastyValue(&random, fileSize: bytes.count), width: width)
        case 5 where shnum > 0:
            // Symbol entries: st_name, st_info, st_shndx, st_value, st_size in a .symtab/.dynsym.
            for section in 0..<shnum {
                let base = shoff &+ section &* 64
                let type = peek(bytes, base &+ 4, width: 4)
                guard type == 2 || type == 11, random.next() % 2 == 0 else { continue }
                let offset = Int(clamping: peek(bytes, base &+ 24, width: 8))
                let size = Int(clamping: peek(bytes, base &+ 32, width: 8))
                guard size >= 48 else { continue }
                for _ in 0..<(1 + random.next() % 8) {
                    let symbol = offset &+ 24 &* Int(random.next() % UInt64(size / 24))
                    let fields: [(Int, Int)] = [(0, 4), (4, 1), (6, 2), (8, 8), (16, 8)]
                    let (field, width) = fields[Int(random.next() % UInt64(fields.count))]
                    poke(&bytes, symbol &+ field, nastyValue(&random, fileSize: bytes.count), width: width)
                }
            }
        case 6:
            // Note areas: corrupt namesz/descsz of the first note we can find by scanning for "GNU\0".
            if let index = bytes.indices.dropLast(4).prefix(8192).first(where: {
                bytes[$0] == 0x47 && bytes[$0 + 1] == 0x4e && bytes[$0 + 2] == 0x55 && bytes[$0 + 3] == 0
            }), index >= 12 {
                poke(
                    &bytes,
                    index - 12 + 4 * Int(random.next() % 3),
                    nastyValue(&random, fileSize: bytes.count),
                    width: 4
                )
            }
        default:
            // Overwrite a random run with random bytes.
            if bytes.count > 16 {
                let start = Int(random.next() % UInt64(bytes.count))
                let length = min(bytes.count - start, 1 + Int(random.next() % 64))
                for i in start..<start + length {
                    bytes[i] = UInt8(truncatingIfNeeded: random.next())
                }
            }
        }
    }
    return bytes
}

/// Everything the symbolizer does with an ELF file, applied to one (possibly hostile) image.
/// Returns whether the image parsed.
private func exercise(_ bytes: [UInt8]) -> Bool {
    guard let elf = try? ELFFile(bytes: bytes) else {
        return false
    }
    _ = elf.buildID
    _ = elf.debugLink
    _ = elf.hasSymbolTable
    for section in elf.sections.prefix(64) {
        _ = try? elf.data(of: section)
    }
    _ = try? elf.functionSymbols()
    if let embedded = MiniDebugInfo.image(in: elf) {
        _ = try? embedded.functionSymbols()
    }
    var builder = SymbolTable.Builder()
    try? elf.forEachFunctionSymbol(in: .all) { builder.add($0) }
    let table = builder.build()
    for address: UInt64 in [0, 1, 0x1000, 0x1139, UInt64.max, UInt64.max - 1, UInt64(Int64.max)] {
        _ = table.lookup(address)
    }
    for header in elf.programHeaders.prefix(16) {
        _ = elf.loadBias(mappingStart: header.virtualAddress, fileOffset: header.offset)
        _ = elf.loadBias(mappingStart: UInt64.max, fileOffset: UInt64.max)
    }
    return true
}

@Suite("ELF reader on hostile input")
struct ELFFuzzTests {
    @Test("thousands of truncated and mutated ELF files produce errors, never traps")
    func mutatedFiles() throws {
        let fixtures = try Fixtures.get()
        let paths =
            ["/bin/ls", fixtures.pie, fixtures.nonPIE, fixtures.library, fixtures.miniDebugInfo] + fixtures.foreign
        let originals = try paths.map { path in
            [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        }
        var random = SeededGenerator(state: 0x4845_4152_5448)
        let started = ContinuousClock.now
        var parsed = 0
        var rejected = 0
        let iterationsPerFile = 1300
        for original in originals {
            #expect(exercise(original))
            for _ in 0..<iterationsPerFile {
                if exercise(mutate(original, &random)) {
                    parsed += 1
                } else {
                    rejected += 1
                }
            }
        }
        print("ELF fuzzing: \(parsed) mutated files parsed, \(rejected) rejected, in \(ContinuousClock.now - started)")
        // Both outcomes must occur, or the mutations aren't reaching the parser.
        #expect(parsed > 100)
        #expect(rejected > 100)
    }

    @Test("mutated files read through a file descriptor (pread) behave like in-memory ones")
    func mutatedFilesOnDisk() throws {
        let fixtures = try Fixtures.get()
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixtures.pie)))
        let directory = "\(fixtures.directory)/fuzz-\(UUID())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var random = SeededGenerator(state: 0x5359_4d42)
        for i in 0..<200 {
            let bytes = mutate(original, &random)
            let path = "\(directory)/\(i)"
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let fromMemory = try? ELFFile(bytes: bytes)
            let fromFile = try? ELFFile(path: path)
            #expect((fromMemory == nil) == (fromFile == nil))
            if let fromMemory, let fromFile {
                #expect(fromMemory.sections == fromFile.sections)
                #expect(fromMemory.buildID == fromFile.buildID)
                #expect((try? fromMemory.functionSymbols()) == (try? fromFile.functionSymbols()))
            }
        }
    }

    @Test("every truncation of a small binary is handled")
    func everyTruncation() throws {
        let fixtures = try Fixtures.get()
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixtures.library)))
        // Every prefix through the headers, then every 7th length.
        var length = 0
        var parsed = 0
        while length < original.count {
            let accepted = exercise(Array(original[0..<length]))
            // Shorter than the 64-byte ELF header: nothing can be read, so nothing may be accepted.
            if length < 64 { #expect(!accepted, "accepted a \(length)-byte prefix") }
            parsed += accepted ? 1 : 0
            length += length < 1024 ? 1 : 7
        }
        #expect(exercise(original), "the whole file parses")
        #expect(parsed < length, "some truncations must be refused")
    }

    @Test("hostile headers are rejected with the right codes")
    func specificCorruptions() throws {
        let fixtures = try Fixtures.get()
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixtures.pie)))

        var hugeSectionOffset = original
        poke(&hugeSectionOffset, 40, UInt64.max - 8, width: 8)
        #expect(throws: ELFError.self) { try ELFFile(bytes: hugeSectionOffset) }

        var tinyEntrySize = original
        poke(&tinyEntrySize, 58, 8, width: 2)
        do {
            _ = try ELFFile(bytes: tinyEntrySize)
            Issue.record("accepted e_shentsize 8")
        } catch {
            #expect(error.code == .malformed)
        }

        var truncated = original
        truncated.removeLast(original.count / 2)
        do {
            _ = try ELFFile(bytes: truncated)
            Issue.record("accepted a file cut before its section headers")
        } catch {
            #expect(error.code == .truncated)
        }

        // A symbol table whose sh_link points past the section table.
        let elf = try ELFFile(bytes: original)
        let symtab = try #require(elf.sections.first { $0.type == 2 })
        let shoff = Int(peek(original, 40, width: 8))
        var badLink = original
        poke(&badLink, shoff + symtab.index * 64 + 40, 0xffff_fff0, width: 4)
        let damaged = try ELFFile(bytes: badLink)
        do {
            _ = try damaged.functionSymbols()
            Issue.record("accepted a bad sh_link")
        } catch {
            #expect(error.code == .malformed)
        }
    }
}

/// Builds a table the way the symbolizer does (chunked reads, names left in the file) and looks up every
/// symbol start and some hostile addresses. Returns the table's size and what the lookups found.
private func lazyLookups(_ elf: ELFFile, probes: [UInt64]) -> (count: Int, found: [String?]) {
    var builder = SymbolTable.Builder()
    try? builder.addFunctionSymbols(of: elf, in: .all)
    let table = builder.build()
    _ = table.byteCount
    return (table.count, probes.map { table.lookup($0).map { "\($0.name)@\($0.start)" } })
}

@Suite("Lazily named symbol tables on hostile input")
struct LazySymbolTableFuzzTests {
    @Test("mutated files: the chunked, lazily named table matches between memory and pread, and never traps")
    func mutatedLazyTables() throws {
        let fixtures = try Fixtures.get()
        let directory = "\(fixtures.directory)/lazy-fuzz-\(UUID())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var random = SeededGenerator(state: 0x4c41_5a59)
        var parsed = 0
        for path in [fixtures.pie, fixtures.nonPIE, fixtures.library, fixtures.miniDebugInfo] {
            let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            let symbols = (try? ELFFile(bytes: original).functionSymbols()) ?? []
            var probes: [UInt64] = [0, 1, 0x1000, 0x1139, UInt64.max, UInt64.max - 1, UInt64(Int64.max)]
            for symbol in symbols.prefix(64) {
                probes += [symbol.value, symbol.value &+ 1]
            }
            for i in 0..<150 {
                let bytes = i == 0 ? original : mutate(original, &random)
                let file = "\(directory)/\(i)"
                try Data(bytes).write(to: URL(fileURLWithPath: file))
                guard let fromMemory = try? ELFFile(bytes: bytes), let fromFile = try? ELFFile(path: file) else {
                    continue
                }
                parsed += 1
                let memory = lazyLookups(fromMemory, probes: probes)
                let disk = lazyLookups(fromFile, probes: probes)
                #expect(memory.count == disk.count)
                #expect(memory.found == disk.found)
                if i == 0 {
                    // Unmutated: the same answers as a table built from names read up front.
                    var eager = SymbolTable.Builder()
                    try? fromMemory.forEachFunctionSymbol(in: .all) { eager.add($0) }
                    let table = eager.build()
                    #expect(memory.count == table.count)
                    #expect(memory.found == probes.map { table.lookup($0).map { "\($0.name)@\($0.start)" } })
                    #expect(symbols.isEmpty || memory.found.contains { $0 != nil })
                }
                if let embedded = MiniDebugInfo.image(in: fromMemory) {
                    _ = lazyLookups(embedded, probes: probes)
                }
            }
        }
        #expect(parsed > 100)
    }
}
