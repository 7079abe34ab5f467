// ELFFileTests.swift: the ELF reader against readelf and nm: /bin/ls, compiled fixtures (ET_EXEC and ET_DYN, debug
// links), load bias, ELF32 and big-endian files, MiniDebugInfo, and typed errors for non-ELF input.

import Foundation
import Testing

@testable import HearthELF
@testable import HearthSymbolizer

@Suite("ELF reader")
struct ELFFileTests {
    @Test("reads /bin/ls: PIE, build id matching readelf, .dynsym only")
    func systemBinary() throws {
        let elf = try ELFFile(path: "/bin/ls")
        #expect(elf.is64Bit && elf.isLittleEndian)
        #expect(elf.fileType == .sharedObject)
        #expect(elf.buildID == (try readelfBuildID("/bin/ls")))
        #expect(!elf.hasSymbolTable)
        let symbols = try elf.functionSymbols()
        #expect(!symbols.isEmpty)
        #expect(symbols.allSatisfy { $0.isDynamic && ($0.type == 2 || $0.type == 10) && $0.value != 0 })
        #expect(elf.section(named: ".text") != nil)
        #expect(elf.programHeaders.contains { $0.isLoad && $0.isExecutable })
    }

    @Test("compiled fixtures: ET_EXEC vs ET_DYN, symbols equal to nm, debug link")
    func fixtures() throws {
        let fixtures = try Fixtures.get()
        let nonPIE = try ELFFile(path: fixtures.nonPIE)
        #expect(nonPIE.fileType == .executable)
        let pie = try ELFFile(path: fixtures.pie)
        #expect(pie.fileType == .sharedObject)
        #expect(pie.hasSymbolTable)
        #expect(pie.debugLink == nil)

        for (elf, path) in [(nonPIE, fixtures.nonPIE), (pie, fixtures.pie)] {
            let nm = try nmSymbols(path)
            let symbols = try elf.functionSymbols()
            for name in ["hearth_leaf", "hearth_middle", "hearth_static_helper", "main"] {
                let symbol = try #require(symbols.first { $0.name == name && !$0.isDynamic })
                let expected = try #require(nm[name])
                #expect(symbol.value == expected.value && symbol.size == expected.size, "\(name)")
            }
            #expect(elf.buildID == (try readelfBuildID(path)))
        }

        let linked = try ELFFile(path: fixtures.debugLinked)
        #expect(linked.debugLink?.fileName == "prog_debuglink.debug")
        #expect(!linked.hasSymbolTable)
        let debugFile = try ELFFile(path: "\(fixtures.directory)/prog_debuglink.debug")
        #expect(debugFile.hasSymbolTable)
        #expect(debugFile.buildID == linked.buildID)
        // The debug file's .text has no bytes but keeps its address range.
        let text = try #require(debugFile.section(named: ".text"))
        #expect(text.hasNoBits && text.size > 0)
        #expect(try debugFile.data(of: text).isEmpty)
    }

    @Test("load bias: 0 for non-PIE, the load address for PIE, from the PT_LOAD the mapping's offset selects")
    func loadBias() throws {
        let fixtures = try Fixtures.get()
        let nonPIE = try ELFFile(path: fixtures.nonPIE)
        for segment in nonPIE.programHeaders where segment.isLoad && segment.isExecutable {
            let start = segment.virtualAddress & ~0xfff
            let offset = segment.offset & ~0xfff
            #expect(nonPIE.loadBias(mappingStart: start, fileOffset: offset) == 0)
        }
        let pie = try ELFFile(path: fixtures.pie)
        let base: UInt64 = 0x5555_5555_4000
        for segment in pie.programHeaders where segment.isLoad && segment.isExecutable {
            let start = (base + segment.virtualAddress) & ~0xfff
            let offset = segment.offset & ~0xfff
            #expect(pie.loadBias(mappingStart: start, fileOffset: offset) == base)
        }
        // A segment whose p_vaddr - p_offset is not a multiple of the page size (lld, -z separate-code).
        let segments = [
            ELFFile.ProgramHeader(
                type: 1,
                flags: 4,
                offset: 0,
                virtualAddress: 0,
                fileSize: 0x5f0,
                memorySize: 0x5f0,
                alignment: 0x1000
            ),
            ELFFile.ProgramHeader(
                type: 1,
                flags: 5,
                offset: 0x5f0,
                virtualAddress: 0x15f0,
                fileSize: 0x200,
                memorySize: 0x200,
                alignment: 0x1000
            ),
        ]
        // The executable mapping starts at the page holding p_offset 0x5f0, i.e. file offset 0.
        #expect(
            ELFFile.loadBias(segments: segments, mappingStart: 0x7f00_0000_1000, fileOffset: 0)
                == 0x7f00_0000_1000 - 0x1000
        )
    }

    @Test("reads ELF32 and big-endian files: symbols and build ids equal to nm and readelf")
    func foreignClassesAndByteOrders() throws {
        let fixtures = try Fixtures.get()
        let expected: [(is64: Bool, littleEndian: Bool)] = [(false, true), (true, false), (false, false)]
        for (path, shape) in zip(fixtures.foreign, expected) {
            let elf = try ELFFile(path: path)
            #expect(elf.is64Bit == shape.is64 && elf.isLittleEndian == shape.littleEndian, "\(path)")
            #expect(elf.fileType == .executable)
            #expect(elf.buildID == (try? readelfBuildID(path)))
            let nm = try nmSymbols(path)
            let symbols = try elf.functionSymbols()
            for name in ["f", "g", "_start"] {
                let symbol = try #require(symbols.first { $0.name == name }, "\(name) in \(path)")
                let reference = try #require(nm[name])
                #expect(symbol.value == reference.value && symbol.size == reference.size, "\(name) in \(path)")
            }
            let text = try #require(elf.programHeaders.first { $0.isLoad && $0.isExecutable })
            #expect(elf.loadBias(mappingStart: text.virtualAddress & ~0xfff, fileOffset: text.offset & ~0xfff) == 0)
        }
    }

    @Test("MiniDebugInfo: the .gnu_debugdata image decompresses to the missing local symbols")
    func miniDebugInfo() throws {
        let fixtures = try Fixtures.get()
        let elf = try ELFFile(path: fixtures.miniDebugInfo)
        #expect(!elf.hasSymbolTable)
        #expect(MiniDebugInfo.isAvailable)
        let embedded = try #require(MiniDebugInfo.image(in: elf))
        #expect(embedded.hasSymbolTable)
        let names = Set(try embedded.functionSymbols().map(\.name))
        #expect(names.isSuperset(of: ["hearth_leaf", "hearth_middle", "hearth_static_helper", "main"]))
        #expect(MiniDebugInfo.decompress(Array("not xz".utf8)) == nil)
        #expect(MiniDebugInfo.decompress([]) == nil)
    }

    @Test("rejects non-ELF input with typed errors")
    func rejects() throws {
        for bytes in [[], [0x7f, 0x45], Array("#!/bin/sh\necho hello\n".utf8), [0x7f, 0x45, 0x4c, 0x46, 9, 1, 1]] {
            #expect(throws: ELFError.self) { try ELFFile(bytes: bytes) }
        }
        do {
            _ = try ELFFile(path: "/nonexistent/file")
            Issue.record("opened a missing file")
        } catch {
            #expect(error.code == .io)
            #expect(error.cause is SystemError)
        }
        do {
            _ = try ELFFile(bytes: Array("not an elf file at all".utf8))
            Issue.record("parsed text")
        } catch {
            #expect(error.code == .notELF)
        }
        #expect(throws: ELFError.self) { try ELFFile(path: "/proc/self/maps") }
    }
}
