// InternalsTests.swift: the symbolizer's internals: the /proc/PID/maps and kallsyms parsers (also on mutated
// input), symbol-table containment and aliases, and LRU eviction.

import Foundation
import Testing

@testable import HearthELF
@testable import HearthSymbolizer

@Suite("Maps, symbol tables and caches")
struct InternalsTests {
    @Test("parses /proc/PID/maps lines: deleted files, spaces in paths, vdso, anonymous memory")
    func maps() {
        let text = """
            00400000-00452000 r-xp 00000000 08:02 173521      /usr/bin/dbus-daemon
            7f2c4a000000-7f2c4a021000 rw-p 00000000 00:00 0
            7f2c4b000000-7f2c4b100000 r-xp 00002000 fd:01 99          /opt/my app/lib (deleted)
            7ffd5c3f2000-7ffd5c3f4000 r-xp 00000000 00:00 0                          [vdso]
            7ffd5c3f5000-7ffd5c3f6000 r-xp 00000000 00:01 2049  /memfd:jit (deleted)
            garbage line
            ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]

            """
        let mappings = ProcMaps.parse(Array(text.utf8))
        #expect(mappings.count == 6)
        #expect(mappings[0].start == 0x400000 && mappings[0].end == 0x452000 && mappings[0].isExecutable)
        #expect(mappings[0].kind == .file && mappings[0].inode == 173_521 && mappings[0].deviceMajor == 8)
        #expect(mappings[1].kind == .anonymous && mappings[1].moduleName == "[anon]" && !mappings[1].isExecutable)
        #expect(mappings[2].path == "/opt/my app/lib" && mappings[2].isDeleted && mappings[2].fileOffset == 0x2000)
        #expect(mappings[2].deviceMajor == 0xfd)
        #expect(mappings[3].kind == .vdso)
        // memfd files are deleted files with an inode: readable through /proc/PID/map_files.
        #expect(mappings[4].kind == .file && mappings[4].path == "/memfd:jit" && mappings[4].isDeleted)
        #expect(mappings[5].kind == .special && mappings[5].path == "[vsyscall]")
        #expect(ProcMaps.index(of: 0x400000, in: mappings) == 0)
        #expect(ProcMaps.index(of: 0x451fff, in: mappings) == 0)
        #expect(ProcMaps.index(of: 0x452000, in: mappings) == nil)
        #expect(ProcMaps.index(of: 0x7ffd_5c3f_2001, in: mappings) == 3)
        #expect(ProcMaps.index(of: 0, in: mappings) == nil)
    }

    private func symbol(
        _ name: String,
        _ value: UInt64,
        _ size: UInt64,
        binding: UInt8 = 1,
        sectionEnd: UInt64? = nil
    )
        -> RawFunctionSymbol
    {
        RawFunctionSymbol(
            value: value,
            size: size,
            type: 2,
            binding: binding,
            sectionIndex: 1,
            isDynamic: false,
            name: ArraySlice(name.utf8),
            sectionEnd: sectionEnd
        )
    }

    @Test("symbol table: containment by size, zero-size symbols, nesting, aliases")
    func symbolTable() {
        var builder = SymbolTable.Builder()
        builder.add(self.symbol("outer", 0x1000, 0x100))
        builder.add(self.symbol("inner", 0x1040, 0x10))
        builder.add(self.symbol("__libc_alias", 0x2000, 0x20))
        builder.add(self.symbol("alias", 0x2000, 0x20))
        builder.add(self.symbol("local_alias", 0x2000, 0x20, binding: 0))
        builder.add(self.symbol("asm_stub", 0x3000, 0, sectionEnd: 0x3100))
        builder.add(self.symbol("last_stub", 0x3200, 0, sectionEnd: 0x3100))
        builder.add(self.symbol("sized_after_gap", 0x4000, 0x10))
        let table = builder.build()
        #expect(table.count == 6)
        #expect(table.lookup(0x0fff) == nil)
        #expect(table.lookup(0x1000)?.name == "outer")
        #expect(table.lookup(0x1045)?.name == "inner")
        #expect(table.lookup(0x1050)?.name == "outer")  // past inner, still inside outer
        #expect(table.lookup(0x10ff)?.name == "outer")
        #expect(table.lookup(0x1100) == nil)
        #expect(table.lookup(0x2010)?.name == "alias")
        #expect(table.lookup(0x2020) == nil)
        #expect(table.lookup(0x30ff)?.name == "asm_stub")
        #expect(table.lookup(0x3100) == nil)  // zero-size symbols end at their section's end
        #expect(table.lookup(0x3250)?.name == "last_stub")  // bad section end: extends to the next symbol
        #expect(table.lookup(0x4010) == nil)
        #expect(table.lookup(UInt64.max) == nil)
    }

    @Test("maps and kallsyms parsers survive mutated real input")
    func textParsersOnHostileInput() throws {
        let maps = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "/proc/self/maps")))
        let handle = try #require(FileHandle(forReadingAtPath: "/proc/kallsyms"))
        let kallsyms = [UInt8](handle.readDataToEndOfFile().prefix(64 << 10))
        try handle.close()
        var state: UInt64 = 0x6b61_6c6c
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 11
        }
        let alphabet = Array("0123456789abcdefxX-: \t\n[]/()rwxp".utf8) + [0, 0xff]
        for _ in 0..<300 {
            var mutatedMaps = maps
            var mutatedKallsyms = kallsyms
            for _ in 0..<32 {
                mutatedMaps[Int(next() % UInt64(mutatedMaps.count))] = alphabet[Int(next() % UInt64(alphabet.count))]
                mutatedKallsyms[Int(next() % UInt64(mutatedKallsyms.count))] =
                    alphabet[Int(next() % UInt64(alphabet.count))]
            }
            mutatedMaps.removeLast(Int(next() % 64))
            let mappings = ProcMaps.parse(mutatedMaps)
            #expect(mappings.allSatisfy { $0.start < $0.end })
            _ = ProcMaps.index(of: next(), in: mappings)
            let symbols = KernelSymbols(parsing: mutatedKallsyms)
            _ = symbols.lookup(next())
            _ = symbols.lookup(UInt64.max)
        }
    }

    @Test("LRU cache evicts the least recently used entry")
    func lru() {
        var cache = LRUCache<Int, String>(capacity: 3)
        cache.set(1, "one")
        cache.set(2, "two")
        cache.set(3, "three")
        #expect(cache.get(1) == "one")
        let evicted = cache.set(4, "four")
        #expect(evicted?.0 == 2)
        #expect(cache.get(2) == nil)
        #expect(cache.count == 3)
        #expect(cache.remove(3) == "three")
        cache.set(5, "five")
        cache.set(6, "six")
        #expect(!cache.contains(1))
        #expect(cache.get(4) == "four" && cache.get(5) == "five" && cache.get(6) == "six")
        for i in 0..<1000 {
            cache.set(i, "\(i)")
        }
        #expect(cache.count == 3)
        #expect(cache.get(999) == "999" && cache.get(997) == "997")
    }
}
