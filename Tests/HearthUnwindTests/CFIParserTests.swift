// CFIParserTests.swift: hand-made CIEs and FDEs for the framing and pointer-encoding side of the reader: every
// DW_EH_PE encoding, CIE augmentations, 64-bit lengths, zero terminators, `.eh_frame_hdr`, `.debug_frame`, gaps,
// damaged lengths, and the 8-byte row encoding.

import Testing

@testable import HearthELF
@testable import HearthUnwind

@Suite("CFI reader")
struct CFIParserTests {
    static let encodings: [UInt8] = [
        0x00,  // absptr
        0x01,  // uleb128
        0x02,  // udata2
        0x03,  // udata4
        0x04,  // udata8
        0x09,  // sleb128
        0x0a,  // sdata2
        0x0b,  // sdata4
        0x0c,  // sdata8
        0x1b,  // pcrel | sdata4 (what GCC emits)
        0x10,  // pcrel | absptr
        0x19,  // pcrel | sleb128
        0x1a,  // pcrel | sdata2
        0x2b,  // textrel | sdata4
        0x32,  // datarel | udata2
        0x3b,  // datarel | sdata4
        0x50,  // aligned
    ]

    @Test("FDE addresses in every pointer encoding", arguments: Self.encodings)
    func fdeEncoding(encoding: UInt8) {
        var builder = CFIBuilder()
        builder.text = 0x1100
        builder.data = 0x2000
        let cie = builder.cie(augmentation: "zR", augmentationData: [encoding])
        // Addresses that every encoding (even pcrel sdata2 from the section at 0x1000..., udata2) can hold.
        builder.address = 0x4000
        builder.fde(
            cie: cie,
            start: 0x4800,
            length: 0x30,
            encoding: encoding,
            instructions: CFA.advance(4) + CFA.defCFAOffset(16)
        )
        builder.terminator()
        let table = builder.compile()
        #expect(table.statistics.malformedFDEs == 0)
        #expect(table.statistics.fdes == 1)
        #expect(table.addressRange == 0x4800..<0x4830)
        #expect(table.row(for: 0x4804)?.rule == .cfaRSP(16))
    }

    @Test("pointer formats decode signed and unsigned values")
    func pointerFormats() throws {
        let cases: [(UInt8, [UInt8], UInt64)] = [
            (0x00, CFIBuilder.little(0x1122_3344_5566_7788, 8), 0x1122_3344_5566_7788),
            (0x01, [0xe5, 0x8e, 0x26], 624_485),
            (0x02, [0xff, 0xff], 0xffff),
            (0x03, [0xff, 0xff, 0xff, 0xff], 0xffff_ffff),
            (0x04, CFIBuilder.little(UInt64.max, 8), UInt64.max),
            (0x09, [0xc0, 0xbb, 0x78], UInt64(bitPattern: -123_456)),
            (0x0a, [0xfe, 0xff], UInt64(bitPattern: -2)),
            (0x0b, [0xfe, 0xff, 0xff, 0xff], UInt64(bitPattern: -2)),
            (0x0c, CFIBuilder.little(UInt64(bitPattern: -2), 8), UInt64(bitPattern: -2)),
        ]
        for (format, bytes, expected) in cases {
            var cursor = CFICursor(ELFBytes(bytes: bytes, littleEndian: true), from: 0, to: bytes.count)
            #expect(try cursor.encodedValue(format: format, addressSize: 8) == expected, "format \(format)")
            #expect(cursor.isAtEnd)
        }
        var cursor = CFICursor(ELFBytes(bytes: [0x80, 0x80], littleEndian: true), from: 0, to: 2)
        #expect(throws: CFIEntryError.self) { try cursor.uleb128() }
        let tooLong = [UInt8](repeating: 0xff, count: 11) + [0x01]
        cursor = CFICursor(ELFBytes(bytes: tooLong, littleEndian: true), from: 0, to: tooLong.count)
        #expect(throws: CFIEntryError.self) { try cursor.uleb128() }
    }

    @Test("pcrel, textrel, datarel, funcrel, aligned and indirect pointers use their bases")
    func pointerApplications() throws {
        let bytes: [UInt8] = [0x10, 0, 0, 0] + [0, 0, 0, 0] + CFIBuilder.little(0xdead_beef, 8)
        let bases = PointerBases(
            section: 0x1000,
            text: 0x5000,
            data: 0x6000,
            loadPointer: { $0 == 0x1010 ? 0xabcd : nil }
        )
        func read(_ encoding: UInt8, from start: Int = 0, function: UInt64? = nil) throws -> UInt64 {
            var cursor = CFICursor(ELFBytes(bytes: bytes, littleEndian: true), from: start, to: bytes.count)
            return try cursor.pointer(PointerEncoding(encoding), bases: bases, function: function)
        }
        #expect(try read(0x13) == 0x1010)  // pcrel: the field is at 0x1000
        #expect(try read(0x23) == 0x5010)
        #expect(try read(0x33) == 0x6010)
        #expect(try read(0x43, function: 0x7000) == 0x7010)
        // aligned: an aligned field is read as is; from offset 1 (0x1001) the next 8-byte boundary is 0x1008.
        #expect(try read(0x50) == 0x10)
        #expect(try read(0x50, from: 1) == 0xdead_beef)
        // indirect pcrel: 0x1000 + 0x10 = 0x1010, which holds 0xabcd.
        #expect(try read(0x93) == 0xabcd)
        #expect(throws: CFIEntryError.self) { try read(0x43) }
        #expect(throws: CFIEntryError.self) { try read(0xff) }
        #expect(throws: CFIEntryError.self) { try read(0x83) }
        #expect(throws: CFIEntryError.self) { try read(0x07) }
    }

    @Test("an indirect FDE address is loaded through the file")
    func indirectFDEAddress() {
        var builder = CFIBuilder()
        let cie = builder.cie(augmentation: "zR", augmentationData: [0x80])  // indirect absptr
        builder.fde(cie: cie, start: 0x9000, length: 0x10, encoding: 0x00, instructions: [])
        let table = builder.compile(loadPointer: { $0 == 0x9000 ? 0x3000 : nil })
        #expect(table.addressRange == 0x3000..<0x3010)
        #expect(table.statistics.malformedFDEs == 0)
    }

    @Test("'zPLR' CIEs: personality pointer skipped, LSDA in the FDE's augmentation data")
    func personalityAndLSDA() {
        var builder = CFIBuilder()
        // 'P': encoding 0x9b (indirect pcrel sdata4) + 4 bytes; 'L': 0x1b; 'R': 0x1b.
        let cie = builder.cie(augmentation: "zPLR", augmentationData: [0x9b, 1, 2, 3, 4, 0x1b, 0x1b])
        builder.fde(
            cie: cie,
            start: 0x2000,
            length: 0x20,
            augmentationData: [9, 9, 9, 9],
            instructions: CFA.advance(1) + CFA.defCFAOffset(16)
        )
        let table = builder.compile()
        #expect(table.statistics.malformedFDEs == 0)
        #expect(table.row(for: 0x2001)?.rule == .cfaRSP(16))
    }

    @Test("CIEs without 'z', version 3, unknown letters after 'z', and a bad version")
    func augmentationVariants() {
        var builder = CFIBuilder()
        let plain = builder.cie(augmentation: "", version: 3)
        builder.fde(
            cie: plain,
            start: 0x1000,
            length: 0x10,
            encoding: 0x00,
            augmentationData: nil,
            instructions: CFA.defCFAOffset(16)
        )
        let extra = builder.cie(augmentation: "zRBG", augmentationData: [0x1b])
        builder.fde(cie: extra, start: 0x1010, length: 0x10, instructions: CFA.defCFAOffset(24))
        let unknown = builder.cie(augmentation: "eh", augmentationData: [])
        builder.fde(cie: unknown, start: 0x1020, length: 0x10, encoding: 0x00, augmentationData: nil, instructions: [])
        let badVersion = builder.cie(augmentation: "zR", version: 2)
        builder.fde(cie: badVersion, start: 0x1030, length: 0x10, instructions: [])
        let table = builder.compile()
        #expect(table.row(for: 0x1000)?.rule == .cfaRSP(16))
        #expect(table.row(for: 0x1010)?.rule == .cfaRSP(24))
        #expect(table.row(for: 0x1020)?.rule == .noInfo)
        #expect(table.statistics.fdes == 2)
        #expect(table.statistics.malformedFDEs == 2)
    }

    @Test("64-bit DWARF lengths and zero terminators between entries")
    func sixtyFourBitAndTerminators() {
        var builder = CFIBuilder()
        let cie = builder.cie(is64: true)
        builder.terminator()
        builder.fde(cie: cie, start: 0x1000, length: 0x10, instructions: CFA.defCFAOffset(16), is64: true)
        let small = builder.cie()
        builder.fde(cie: small, start: 0x1010, length: 0x10, instructions: CFA.defCFAOffset(32))
        builder.terminator()
        let table = builder.compile()
        #expect(table.statistics.malformedFDEs == 0)
        #expect(
            table.rows == [
                UnwindRow(address: 0x1000, rule: .cfaRSP(16)),
                UnwindRow(address: 0x1010, rule: .cfaRSP(32)),
                UnwindRow(address: 0x1020, rule: .noInfo),
            ]
        )
    }

    @Test("gaps between FDEs get a no-info row; adjacent FDEs don't; later FDEs win overlaps")
    func gapsAndOverlaps() {
        var builder = CFIBuilder()
        let cie = builder.cie()
        builder.fde(cie: cie, start: 0x1100, length: 0x10, instructions: CFA.defCFAOffset(24))
        builder.fde(cie: cie, start: 0x1000, length: 0x10, instructions: [])
        builder.fde(cie: cie, start: 0x1010, length: 0x10, instructions: CFA.defCFAOffset(16))
        builder.fde(cie: cie, start: 0x1108, length: 0x10, instructions: CFA.defCFAOffset(32))
        builder.fde(cie: cie, start: 0x1200, length: 0, instructions: [])
        let table = builder.compile()
        #expect(
            table.rows == [
                UnwindRow(address: 0x1000, rule: .cfaRSP(8)),
                UnwindRow(address: 0x1010, rule: .cfaRSP(16)),
                UnwindRow(address: 0x1020, rule: .noInfo),
                UnwindRow(address: 0x1100, rule: .cfaRSP(24)),
                UnwindRow(address: 0x1108, rule: .cfaRSP(32)),
                UnwindRow(address: 0x1118, rule: .noInfo),
            ]
        )
        #expect(table.statistics.overlappingFDEs == 1)
        #expect(table.statistics.fdes == 5)  // the empty one compiles to nothing
        #expect(table.row(for: 0x1050)?.rule == .noInfo)
        #expect(table.row(for: UInt64.max)?.rule == .noInfo)
    }

    @Test("a length running past the section ends a linear walk; .eh_frame_hdr still finds later FDEs")
    func malformedLength() throws {
        var builder = CFIBuilder()
        let cie = builder.cie()
        let first = builder.fde(cie: cie, start: 0x1000, length: 0x10, instructions: CFA.defCFAOffset(16))
        let damaged = builder.fde(cie: cie, start: 0x1010, length: 0x10, instructions: CFA.defCFAOffset(24))
        let last = builder.fde(cie: cie, start: 0x1020, length: 0x10, instructions: CFA.defCFAOffset(32))
        let intact = builder.compile()
        #expect(intact.statistics.fdes == 3)
        builder.bytes.replaceSubrange(damaged..<damaged + 4, with: CFIBuilder.little(0x7fff_0000, 4))

        let walked = builder.compile()
        #expect(walked.statistics.fdes == 1)
        #expect(walked.statistics.malformedFDEs == 1)
        #expect(walked.row(for: 0x1000)?.rule == .cfaRSP(16))
        #expect(walked.row(for: 0x1020)?.rule == .noInfo)

        // A .eh_frame_hdr table: version 1, eh_frame_ptr pcrel sdata4, count udata4, table datarel sdata4.
        let headerAddress: UInt64 = 0x8_0000
        var header: [UInt8] = [1, 0x1b, 0x03, 0x3b]
        header += CFIBuilder.little(builder.address &- (headerAddress + 4), 4)
        header += CFIBuilder.little(3, 4)
        for (start, offset) in [(UInt64(0x1000), first), (0x1010, damaged), (0x1020, last)] {
            header += CFIBuilder.little(start &- headerAddress, 4)
            header += CFIBuilder.little(builder.address + UInt64(offset) &- headerAddress, 4)
        }
        let parsed = try #require(
            EHFrameHeader(data: ELFBytes(bytes: header, littleEndian: true), address: headerAddress)
        )
        #expect(parsed.ehFramePointer == builder.address)
        let offsets = parsed.fdeAddresses.map { Int($0 - builder.address) }
        #expect(offsets == [first, damaged, last])
        let indexed = builder.compile(fdeOffsets: offsets)
        #expect(indexed.statistics.fdes == 2)
        #expect(indexed.statistics.malformedFDEs == 1)
        #expect(indexed.row(for: 0x1020)?.rule == .cfaRSP(32))

        // A header claiming more entries than it holds is refused (the caller then walks the section).
        var lying = header
        lying.replaceSubrange(8..<12, with: CFIBuilder.little(1_000_000, 4))
        #expect(EHFrameHeader(data: ELFBytes(bytes: lying, littleEndian: true), address: headerAddress) == nil)
    }

    @Test(".debug_frame: CIE id all ones, absolute CIE offsets, version 4 address sizes")
    func debugFrame() {
        var builder = CFIBuilder()
        builder.flavor = .debugFrame
        let cie = builder.cie(augmentation: "", version: 4, instructions: CFIBuilder.standardInitialInstructions)
        builder.fde(
            cie: cie,
            start: 0x1000,
            length: 0x20,
            encoding: 0x00,
            augmentationData: nil,
            instructions: CFA.advance(1) + CFA.defCFAOffset(16)
        )
        let cie32 = builder.cie(augmentation: "", version: 4, addressSize: 4)
        builder.fde(
            cie: cie32,
            start: 0x1020,
            length: 0x20,
            encoding: 0x03,
            augmentationData: nil,
            instructions: CFA.defCFAOffset(24)
        )
        let table = builder.compile()
        #expect(table.statistics.malformedFDEs == 0)
        #expect(table.statistics.fdes == 2)
        #expect(table.row(for: 0x1001)?.rule == .cfaRSP(16))
        #expect(table.row(for: 0x1020)?.rule == .cfaRSP(24))
        #expect(table.row(for: 0x1040)?.rule == .noInfo)
    }

    @Test(
        "rows round-trip through the 8-byte encoding",
        arguments: [
            UnwindRule.cfaRSP(8), .cfaRSP(32767, rbp: .saved(atCFAOffset: -1024)),
            .cfaRBP(16, rbp: .saved(atCFAOffset: -16)),
            .cfaRSP(-8, rbp: .undefined), .cfaRBP(0, rbp: .saved(atCFAOffset: 1016)), .plt(threshold: 11), .noInfo,
            .stop,
            .signalFrame, .unsupported,
        ]
    )
    func encoding(rule: UnwindRule) throws {
        let row = UnwindRow(address: 0x40_1234, rule: rule)
        let encoded = try #require(row.encoded(base: 0x40_0000))
        #expect(encoded & 0xffff_ffff == 0x1234)
        #expect(UnwindRow(encoded: encoded, base: 0x40_0000) == row)
        #expect(row.encoded(base: 0x40_1235) == nil)
        // RBP offsets the i8 slot can't hold.
        for offset: Int16 in [-12, -1032, 1024] {
            let unencodable = UnwindRow(address: 0, rule: .cfaRSP(8, rbp: .saved(atCFAOffset: offset)))
            #expect(unencodable.encoded(base: 0) == nil)
        }
        #expect(UnwindRow(address: 0x1_0000_0000, rule: rule).encoded(base: 0) == nil)
    }
}
