// CFIBuilder.swift: writes `.eh_frame` / `.debug_frame` bytes by hand (CIEs, FDEs, LEB128 operands, pointer
// encodings), so each CFI feature can be tested on a few bytes with a known answer.

@testable import HearthELF
@testable import HearthUnwind

/// Assembles a CFI section.
struct CFIBuilder {
    var bytes: [UInt8] = []
    /// The section's link-time address.
    var address: UInt64 = 0x10_0000
    var flavor: CFISection.Flavor = .ehFrame
    /// `DW_EH_PE_textrel` / `DW_EH_PE_datarel` bases used when encoding and decoding.
    var text: UInt64 = 0x1000
    var data: UInt64 = 0x20_0000

    static func uleb(_ value: UInt64) -> [UInt8] {
        var value = value
        var out: [UInt8] = []
        repeat {
            var byte = UInt8(value & 0x7f)
            value >>= 7
            if value != 0 { byte |= 0x80 }
            out.append(byte)
        } while value != 0
        return out
    }

    static func sleb(_ value: Int64) -> [UInt8] {
        var value = value
        var out: [UInt8] = []
        while true {
            let byte = UInt8(value & 0x7f)
            value >>= 7
            if (value == 0 && byte & 0x40 == 0) || (value == -1 && byte & 0x40 != 0) {
                out.append(byte)
                return out
            }
            out.append(byte | 0x80)
        }
    }

    static func little(_ value: UInt64, _ width: Int) -> [UInt8] {
        (0..<width).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
    }

    /// The standard x86-64 initial instructions: CFA = RSP + 8, return address at CFA − 8.
    static let standardInitialInstructions: [UInt8] = [0x0c, 0x07, 0x08, 0x90, 0x01]

    /// Encodes `value` as `encoding` for a field at section offset `offset` (the encoded bytes may include
    /// padding for `DW_EH_PE_aligned`).
    func encode(_ value: UInt64, _ encoding: UInt8, at offset: Int, function: UInt64 = 0) -> [UInt8] {
        var padding: [UInt8] = []
        var fieldOffset = offset
        var base: UInt64 = 0
        switch encoding & 0x70 {
        case 0x10: base = self.address &+ UInt64(offset)  // pcrel: the field's own address
        case 0x20: base = self.text
        case 0x30: base = self.data
        case 0x40: base = function
        case 0x50:
            while (self.address &+ UInt64(fieldOffset)) % 8 != 0 {
                padding.append(0)
                fieldOffset += 1
            }
        default: break
        }
        let relative = value &- base
        let body: [UInt8]
        switch encoding & 0x0f {
        case 0x00, 0x04, 0x0c, 0x08: body = Self.little(relative, 8)
        case 0x01: body = Self.uleb(relative)
        case 0x02, 0x0a: body = Self.little(relative, 2)
        case 0x03, 0x0b: body = Self.little(relative, 4)
        case 0x09: body = Self.sleb(Int64(bitPattern: relative))
        default: body = []
        }
        return padding + body
    }

    /// Appends an entry with the given content (after the length), in the 32- or 64-bit format.
    @discardableResult
    mutating func entry(_ content: [UInt8], is64: Bool = false) -> Int {
        let offset = self.bytes.count
        if is64 {
            self.bytes += [0xff, 0xff, 0xff, 0xff] + Self.little(UInt64(content.count), 8)
        } else {
            self.bytes += Self.little(UInt64(content.count), 4)
        }
        self.bytes += content
        return offset
    }

    /// Appends a CIE and returns its offset.
    @discardableResult
    mutating func cie(
        augmentation: String = "zR",
        version: UInt8 = 1,
        codeAlignment: UInt64 = 1,
        dataAlignment: Int64 = -8,
        returnAddress: UInt64 = 16,
        augmentationData: [UInt8] = [0x1b],
        instructions: [UInt8] = standardInitialInstructions,
        is64: Bool = false,
        addressSize: UInt8 = 8
    ) -> Int {
        var content: [UInt8]
        switch self.flavor {
        case .ehFrame: content = is64 ? Self.little(0, 8) : Self.little(0, 4)
        case .debugFrame: content = is64 ? Self.little(UInt64.max, 8) : Self.little(0xffff_ffff, 4)
        }
        content.append(version)
        content += Array(augmentation.utf8) + [0]
        if version == 4 {
            content += [addressSize, 0]
        }
        content += Self.uleb(codeAlignment) + Self.sleb(dataAlignment)
        content += version == 1 ? [UInt8(returnAddress)] : Self.uleb(returnAddress)
        if augmentation.hasPrefix("z") {
            content += Self.uleb(UInt64(augmentationData.count)) + augmentationData
        }
        content += instructions
        while (content.count + (is64 ? 12 : 4)) % 8 != 0 {
            content.append(0)
        }
        return self.entry(content, is64: is64)
    }

    /// Appends an FDE for `start..<start+length` and returns its offset.
    @discardableResult
    mutating func fde(
        cie: Int,
        start: UInt64,
        length: UInt64,
        encoding: UInt8 = 0x1b,
        augmentationData: [UInt8]? = [],
        instructions: [UInt8],
        is64: Bool = false
    ) -> Int {
        let offset = self.bytes.count
        let headerSize = is64 ? 12 : 4
        let pointerSize = is64 ? 8 : 4
        var content: [UInt8]
        switch self.flavor {
        case .ehFrame:
            content = Self.little(UInt64(offset + headerSize - cie), pointerSize)
        case .debugFrame:
            content = Self.little(UInt64(cie), pointerSize)
        }
        content += self.encode(start, encoding, at: offset + headerSize + content.count)
        content += self.encode(length, encoding & 0x0f, at: offset + headerSize + content.count)
        if let augmentationData {
            content += Self.uleb(UInt64(augmentationData.count)) + augmentationData
        }
        content += instructions
        return self.entry(content, is64: is64)
    }

    /// A zero terminator.
    mutating func terminator() {
        self.bytes += [0, 0, 0, 0]
    }

    var section: CFISection {
        CFISection(
            data: ELFBytes(bytes: self.bytes, littleEndian: true),
            flavor: self.flavor,
            bases: PointerBases(section: self.address, text: self.text, data: self.data)
        )
    }

    /// Compiles the section (walked linearly, or through `fdeOffsets`) into a table.
    func compile(fdeOffsets: [Int]? = nil, loadPointer: (@Sendable (UInt64) -> UInt64?)? = nil) -> UnwindTable {
        var section = self.section
        if let loadPointer {
            section = CFISection(
                data: section.data,
                flavor: section.flavor,
                bases: PointerBases(section: self.address, text: self.text, data: self.data, loadPointer: loadPointer)
            )
        }
        var compiler = CFICompiler(codeRanges: [], logger: nil)
        compiler.add(section, fdeOffsets: fdeOffsets)
        let (rows, range) = compiler.finish()
        return UnwindTable(key: .buildID("test"), addressRange: range, rows: rows, statistics: compiler.statistics)
    }
}

/// DW_CFA instruction bytes, named so tests read like the CFI they describe.
enum CFA {
    static func advance(_ delta: UInt8) -> [UInt8] { [0x40 | delta] }
    static func offset(_ register: UInt8, _ factored: UInt64) -> [UInt8] {
        [0x80 | register] + CFIBuilder.uleb(factored)
    }
    static func restore(_ register: UInt8) -> [UInt8] { [0xc0 | register] }
    static func defCFA(_ register: UInt64, _ offset: UInt64) -> [UInt8] {
        [0x0c] + CFIBuilder.uleb(register) + CFIBuilder.uleb(offset)
    }
    static func defCFAOffset(_ offset: UInt64) -> [UInt8] { [0x0e] + CFIBuilder.uleb(offset) }
    static func defCFARegister(_ register: UInt64) -> [UInt8] { [0x0d] + CFIBuilder.uleb(register) }
    static let rememberState: [UInt8] = [0x0a]
    static let restoreState: [UInt8] = [0x0b]
    static let nop: [UInt8] = [0x00]
    /// The binutils `.plt` CFA expression with `DW_OP_lit<threshold>`.
    static func pltExpression(threshold: UInt8) -> [UInt8] {
        [0x0f, 11, 0x77, 0x08, 0x80, 0x00, 0x3f, 0x1a, 0x30 + threshold, 0x2a, 0x33, 0x24, 0x22]
    }
}
