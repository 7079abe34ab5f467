// EHFrameHeaderFuzzTests.swift: `.eh_frame_hdr` on hostile input, fuzzed like the CFI reader: thousands of seeded
// headers (in every pointer encoding a table may use) and mutations of them decode to exactly what was written or
// are refused, never trap and never list more FDEs than the bytes hold; a table naming one FDE 200,000 times decodes
// quickly and the compiler compiles that FDE once.

import Foundation
import HearthELF
import HearthTestSupport
import Testing

@testable import HearthUnwind

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

/// Encodes `value` in `encoding` for a field at `position` of a header at link-time address `header` (the bytes
/// include the padding `DW_EH_PE_aligned` asks for); nil when the format can't hold the value.
private func encodePointer(_ value: UInt64, _ encoding: UInt8, at position: Int, header: UInt64) -> [UInt8]? {
    var padding: [UInt8] = []
    var base: UInt64 = 0
    switch encoding & 0x70 {
    case 0x00: base = 0
    case 0x10: base = header &+ UInt64(position)
    case 0x30: base = header
    case 0x50:
        while (header &+ UInt64(position + padding.count)) % 8 != 0 {
            padding.append(0)
        }
    default: return nil
    }
    let relative = value &- base
    let signed = Int64(bitPattern: relative)
    switch encoding & 0x0f {
    case 0x00, 0x04, 0x08, 0x0c: return padding + CFIBuilder.little(relative, 8)
    case 0x01: return padding + CFIBuilder.uleb(relative)
    case 0x09: return padding + CFIBuilder.sleb(signed)
    case 0x02 where relative <= UInt64(UInt16.max): return padding + CFIBuilder.little(relative, 2)
    case 0x0a where Int16(exactly: signed) != nil: return padding + CFIBuilder.little(relative, 2)
    case 0x03 where relative <= UInt64(UInt32.max): return padding + CFIBuilder.little(relative, 4)
    case 0x0b where Int32(exactly: signed) != nil: return padding + CFIBuilder.little(relative, 4)
    default: return nil
    }
}

/// A `.eh_frame_hdr` table as written: its fields, and where they lie in its bytes.
private struct HeaderImage {
    var bytes: [UInt8]
    var ehFrame: UInt64
    var fdes: [UInt64]
    /// Where the count field starts.
    var countOffset: Int
    /// Where the table starts.
    var tableOffset: Int
}

/// Writes a header at `address`: version 1, the three encodings, the `.eh_frame` pointer, `count` (the number of
/// entries unless a test lies) and the `(start, fde)` entries; nil when an encoding can't hold a value.
private func writeHeader(
    address: UInt64,
    encodings: (frame: UInt8, count: UInt8, table: UInt8),
    ehFrame: UInt64,
    count: UInt64,
    entries: [(start: UInt64, fde: UInt64)]
) -> HeaderImage? {
    var bytes: [UInt8] = [1, encodings.frame, encodings.count, encodings.table]
    guard let frame = encodePointer(ehFrame, encodings.frame, at: bytes.count, header: address) else {
        return nil
    }
    bytes += frame
    let countOffset = bytes.count
    guard let countField = encodePointer(count, encodings.count, at: bytes.count, header: address) else {
        return nil
    }
    bytes += countField
    let tableOffset = bytes.count
    for entry in entries {
        guard let start = encodePointer(entry.start, encodings.table, at: bytes.count, header: address) else {
            return nil
        }
        bytes += start
        guard let fde = encodePointer(entry.fde, encodings.table, at: bytes.count, header: address) else {
            return nil
        }
        bytes += fde
    }
    return HeaderImage(
        bytes: bytes,
        ehFrame: ehFrame,
        fdes: entries.map(\.fde),
        countOffset: countOffset,
        tableOffset: tableOffset
    )
}

/// `.eh_frame_ptr` encodings linkers use (pcrel sdata4 above all) and others the format allows.
private let frameEncodings: [UInt8] = [0x1b, 0x1b, 0x1b, 0x03, 0x04, 0x0c, 0x3b, 0x01, 0x09, 0x1c, 0x00, 0x5c, 0x13]
/// `fde_count` encodings: udata4 above all.
private let countEncodings: [UInt8] = [0x03, 0x03, 0x03, 0x01, 0x04, 0x0b, 0x02, 0x09, 0x0c, 0x0a, 0x00, 0x53]
/// Table encodings: datarel sdata4 above all (the only one the unwinder's binary search would use).
private let tableEncodings: [UInt8] = [
    0x3b, 0x3b, 0x3b, 0x3b, 0x3c, 0x03, 0x04, 0x0b, 0x1b, 0x01, 0x09, 0x39, 0x3a, 0x33, 0x5b, 0x0c, 0x00,
]

/// A valid header in random encodings: near the code (`compact`, so 2-byte fields fit), in a typical executable, or
/// at the top of the address space (relative values wrap).
private func randomHeader(_ random: inout SeededGenerator) -> (image: HeaderImage, address: UInt64) {
    let address: UInt64
    switch below(4, &random) {
    case 0: address = 0xffff_ffff_ffff_0000 + UInt64(below(0x800, &random)) * 8
    case 1: address = 0x2000 + UInt64(below(0x100, &random)) * 4
    default: address = 0x40_0000 + UInt64(below(0x1_0000, &random)) * 4
    }
    let compact = address < 0x10000
    let ehFrame = address &+ 0x40 &+ UInt64(below(compact ? 0x100 : 0x10_0000, &random))
    let counts = [1, 1 + below(8, &random), 1 + below(64, &random), 1 + below(300, &random), 1 + below(2000, &random)]
    let count = below(8, &random) == 0 ? counts[4] : counts[below(4, &random)]
    var start = compact ? 0x1000 : address &- 0x30_0000 &+ UInt64(below(0x1000, &random))
    var entries: [(start: UInt64, fde: UInt64)] = []
    for _ in 0..<count {
        start &+= UInt64(1 + below(compact ? 4 : 0x400, &random))
        entries.append((start, ehFrame &+ UInt64(below(compact ? 0x1000 : 0x10_0000, &random))))
    }
    entries.sort { $0.start < $1.start }
    while true {
        let encodings = (
            frame: pick(frameEncodings, &random), count: pick(countEncodings, &random),
            table: pick(tableEncodings, &random)
        )
        if let image = writeHeader(
            address: address,
            encodings: encodings,
            ehFrame: ehFrame,
            count: UInt64(entries.count),
            entries: entries
        ) {
            return (image, address)
        }
    }
}

/// Reads a header independently (LSB's `.eh_frame_hdr`, pointers relative to the field or to the header): the
/// `.eh_frame` pointer and the FDE column, or nil if a field can't be read.
private func referenceDecode(_ bytes: [UInt8], address: UInt64) -> (ehFrame: UInt64, fdes: [UInt64])? {
    guard bytes.count >= 4, bytes[0] == 1 else {
        return nil
    }
    var position = 4
    func read(_ encoding: UInt8) -> UInt64? {
        guard encoding != 0xff, encoding & 0x80 == 0 else {
            return nil
        }
        var base: UInt64 = 0
        switch encoding & 0x70 {
        case 0x00: base = 0
        case 0x10: base = address &+ UInt64(position)
        case 0x30: base = address
        case 0x50:
            while (address &+ UInt64(position)) % 8 != 0 {
                position += 1
            }
            base = 0
        default: return nil
        }
        func fixed(_ width: Int) -> UInt64? {
            guard position + width <= bytes.count else {
                return nil
            }
            var value: UInt64 = 0
            for i in 0..<width {
                value |= UInt64(bytes[position + i]) << (8 * UInt64(i))
            }
            position += width
            return value
        }
        func leb(signed: Bool) -> UInt64? {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while position < bytes.count {
                let byte = bytes[position]
                position += 1
                if shift < 64 {
                    value |= UInt64(byte & 0x7f) << shift
                }
                shift += 7
                if byte & 0x80 == 0 {
                    if signed, shift < 64, byte & 0x40 != 0 {
                        value |= ~0 << shift
                    }
                    return value
                }
            }
            return nil
        }
        let value: UInt64?
        switch encoding & 0x0f {
        case 0x00, 0x04, 0x08, 0x0c: value = fixed(8)
        case 0x01: value = leb(signed: false)
        case 0x09: value = leb(signed: true)
        case 0x02: value = fixed(2)
        case 0x0a: value = fixed(2).map { UInt64(bitPattern: Int64(Int16(truncatingIfNeeded: $0))) }
        case 0x03: value = fixed(4)
        case 0x0b: value = fixed(4).map { UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: $0))) }
        default: value = nil
        }
        return value.map { base &+ $0 }
    }
    guard let ehFrame = read(bytes[1]), let count = read(bytes[2]) else {
        return nil
    }
    var fdes: [UInt64] = []
    // Each entry takes at least two bytes, so this ends within the bytes whatever the count says.
    while UInt64(fdes.count) < count {
        guard read(bytes[3]) != nil, let fde = read(bytes[3]) else {
            return nil
        }
        fdes.append(fde)
    }
    return (ehFrame, fdes)
}

private func decode(_ bytes: [UInt8], address: UInt64) -> EHFrameHeader? {
    EHFrameHeader(data: ELFBytes(bytes: bytes, littleEndian: true), address: address)
}

/// Encodings that break the reader: omitted, indirect, unknown formats and applications, textrel and funcrel (no
/// base in a header), and valid ones.
private func hostileEncoding(_ random: inout SeededGenerator) -> UInt8 {
    pick(
        [
            0xff, 0x80 | pick(tableEncodings, &random), 0x05, 0x06, 0x07, 0x0d, 0x0e, 0x0f, 0x60, 0x7b, 0x2b, 0x4b,
            0x3b, 0x03, 0x01, 0x09, UInt8(truncatingIfNeeded: random.next()),
        ],
        &random
    )
}

@Suite(".eh_frame_hdr on hostile input")
struct EHFrameHeaderFuzzTests {
    @Test("valid headers in every encoding decode to exactly the entries written")
    func validHeaders() {
        let started = ContinuousClock.now
        var violations = Violations()
        var entries = 0
        let iterations = 3000
        for iteration in 0..<iterations {
            var random = SeededGenerator.iteration(iteration, of: 0x4548_4452)
            let (image, address) = randomHeader(&random)
            let seed = "iteration \(iteration), encodings \(image.bytes[1...3].map { hex($0) })"
            guard let header = decode(image.bytes, address: address) else {
                violations.check(false, "\(seed): a valid header was refused")
                continue
            }
            entries += header.fdeAddresses.count
            violations.check(header.ehFramePointer == image.ehFrame, "\(seed): eh_frame_ptr \(header.ehFramePointer)")
            violations.check(header.fdeAddresses == image.fdes, "\(seed): the FDE column differs")
        }
        print("Valid .eh_frame_hdr: \(iterations) headers, \(entries) entries, in \(ContinuousClock.now - started)")
        #expect(violations.count == 0, "\(violations.report)")
    }

    @Test("mutated headers decode as an independent reader would, or are refused; never more FDEs than bytes")
    func mutatedHeaders() {
        let started = ContinuousClock.now
        var violations = Violations()
        var decoded = 0
        var refused = 0
        let iterations = 4000
        for iteration in 0..<iterations {
            var random = SeededGenerator.iteration(iteration, of: 0x4d55_5441_5445)
            let (image, address) = randomHeader(&random)
            var bytes = image.bytes
            let seed = "iteration \(iteration)"
            var truncatedOnly = true
            for _ in 0..<(1 + below(3, &random)) where !bytes.isEmpty {
                switch below(8, &random) {
                case 0:
                    // Cut anywhere, often inside the table.
                    bytes.removeLast(1 + below(min(bytes.count, below(2, &random) == 0 ? 16 : bytes.count), &random))
                case 1 where bytes.count >= 4:
                    truncatedOnly = false
                    bytes[1 + below(3, &random)] = hostileEncoding(&random)
                case 2 where bytes.count >= 4:
                    truncatedOnly = false
                    bytes[1 + below(3, &random)] = 0xff
                case 3:
                    // A huge or slightly-too-large count in the count field's first bytes.
                    truncatedOnly = false
                    let value = pick(
                        [UInt64.max, UInt64(UInt32.max), UInt64(bytes.count), UInt64(image.fdes.count + 1), 0],
                        &random
                    )
                    for i in 0..<min(8, max(0, bytes.count - image.countOffset)) {
                        bytes[image.countOffset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))
                    }
                case 4:
                    truncatedOnly = false
                    bytes[0] = pick([0, 2, 0xff, 1], &random)
                case 5:
                    truncatedOnly = false
                    for _ in 0..<(1 + below(8, &random)) {
                        bytes[below(bytes.count, &random)] ^= UInt8(truncatingIfNeeded: random.next() | 1)
                    }
                case 6:
                    truncatedOnly = false
                    bytes += (0..<below(64, &random)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                case 7:
                    // A run of LEB128 continuation bytes.
                    truncatedOnly = false
                    let from = below(bytes.count, &random)
                    for i in from..<min(bytes.count, from + 1 + below(12, &random)) {
                        bytes[i] = 0x80 | UInt8(truncatingIfNeeded: random.next())
                    }
                default:
                    break
                }
            }
            guard let header = decode(bytes, address: address) else {
                refused += 1
                continue
            }
            decoded += 1
            let fdes = header.fdeAddresses
            // Two values of one byte at least per entry, after the 4-byte preamble.
            violations.check(
                !fdes.isEmpty && fdes.count <= (bytes.count - 4) / 2,
                "\(seed): \(fdes.count) FDEs from \(bytes.count) bytes"
            )
            violations.check(
                !truncatedOnly,
                "\(seed): a truncated table (\(bytes.count) of \(image.bytes.count)) decoded"
            )
            if let reference = referenceDecode(bytes, address: address) {
                violations.check(
                    reference.ehFrame == header.ehFramePointer && reference.fdes == fdes,
                    "\(seed): decoded differently from the reference reader"
                )
            } else {
                violations.check(false, "\(seed): decoded a header the reference reader can't read")
            }
        }
        print(
            "Mutated .eh_frame_hdr: \(iterations) headers, \(decoded) decoded, \(refused) refused, "
                + "in \(ContinuousClock.now - started)"
        )
        #expect(violations.count == 0, "\(violations.report)")
        #expect(decoded > 200)
        #expect(refused > 1000)
    }

    @Test("a count below the table's decodes the first entries; above it, or zero, the header is refused")
    func lyingCounts() {
        var violations = Violations()
        for iteration in 0..<1500 {
            var random = SeededGenerator.iteration(iteration, of: 0x434f_554e_54)
            let (image, address) = randomHeader(&random)
            let entries = image.fdes.count
            let seed = "iteration \(iteration), \(entries) entries, encodings \(image.bytes[1...3].map { hex($0) })"
            for claimed in [0, 1, entries / 2, entries - 1, entries + 1, 2 * entries + 4, Int(UInt32.max)] {
                // The same fields with another count: rewrite the header (the count's width may change).
                let tableBytes = Array(image.bytes[image.tableOffset...])
                var bytes = Array(image.bytes[..<image.countOffset])
                guard let count = encodePointer(UInt64(claimed), bytes[2], at: bytes.count, header: address) else {
                    continue
                }
                bytes += count
                // Aligned table entries pad relative to their position: keep the original table's position.
                guard bytes.count == image.tableOffset || image.bytes[3] & 0x70 != 0x50,
                    image.bytes[3] & 0x70 != 0x10
                else {
                    continue
                }
                bytes += tableBytes
                let header = decode(bytes, address: address)
                if claimed >= 1, claimed <= entries {
                    violations.check(
                        header?.fdeAddresses == Array(image.fdes.prefix(claimed)),
                        "\(seed): count \(claimed) did not give the first \(claimed) entries"
                    )
                } else {
                    violations.check(header == nil, "\(seed): count \(claimed) decoded")
                }
            }
        }
        #expect(violations.count == 0, "\(violations.report)")
    }

    @Test("every truncation of a valid header is refused")
    func everyTruncation() {
        var random = SeededGenerator(state: 0x5452_554e_43)
        var headers = 0
        while headers < 60 {
            // Every prefix is decoded: small tables keep this quadratic walk short.
            let (image, address) = randomHeader(&random)
            guard image.bytes.count <= 800 else {
                continue
            }
            headers += 1
            #expect(decode(image.bytes, address: address) != nil)
            for length in 0..<image.bytes.count {
                #expect(
                    decode(Array(image.bytes.prefix(length)), address: address) == nil,
                    "\(length) of \(image.bytes.count) bytes"
                )
            }
        }
    }

    @Test("a header listing one FDE 200,000 times decodes fast, and the compiler compiles that FDE once")
    func oneFDEListedManyTimes() throws {
        var builder = CFIBuilder()
        let cie = builder.cie()
        let fde = builder.fde(
            cie: cie,
            start: 0x1000,
            length: 0x40,
            instructions: CFA.advance(4) + CFA.defCFAOffset(16)
        )
        builder.terminator()
        let fdeAddress = builder.address + UInt64(fde)

        // Version 1, eh_frame_ptr pcrel sdata4, count udata4, table datarel sdata4, as linkers write it.
        let headerAddress: UInt64 = 0x8_0000
        let repeats = 200_000
        var bytes: [UInt8] = [1, 0x1b, 0x03, 0x3b]
        bytes += CFIBuilder.little(builder.address &- (headerAddress + 4), 4)
        bytes += CFIBuilder.little(UInt64(repeats), 4)
        let entry = CFIBuilder.little(0x1000 &- headerAddress, 4) + CFIBuilder.little(fdeAddress &- headerAddress, 4)
        bytes.reserveCapacity(bytes.count + repeats * entry.count)
        for _ in 0..<repeats {
            bytes += entry
        }

        let clock = ContinuousClock()
        let started = clock.now
        let header = try #require(decode(bytes, address: headerAddress))
        let decoded = clock.now - started
        #expect(header.ehFramePointer == builder.address)
        #expect(header.fdeAddresses.count == repeats)
        #expect(header.fdeAddresses.allSatisfy { $0 == fdeAddress })

        // As the table loader turns them into .eh_frame offsets (outside the section: Int.max).
        let size = UInt64(builder.bytes.count)
        let offsets = header.fdeAddresses.map { address in
            let offset = address &- builder.address
            return offset < size ? Int(offset) : Int.max
        }
        let compileStarted = clock.now
        var compiler = CFICompiler(codeRanges: [], logger: nil)
        compiler.add(builder.section, fdeOffsets: offsets)
        let (rows, _) = compiler.finish()
        let compiled = clock.now - compileStarted
        print("200,000 identical .eh_frame_hdr entries: decoded in \(decoded), compiled in \(compiled)")

        #expect(compiler.statistics.duplicateFDEEntries == repeats - 1)
        #expect(compiler.statistics.fdes == 1)
        #expect(compiler.statistics.malformedFDEs == 0)
        #expect(rows == builder.compile().rows)
        let table = builder.compile(fdeOffsets: offsets)
        #expect(table.row(for: 0x1000)?.rule == .cfaRSP(8))
        #expect(table.row(for: 0x1004)?.rule == .cfaRSP(16))
        #expect(table.row(for: 0x1040)?.rule == .noInfo)
        #expect(decoded + compiled < .seconds(5))
    }

    @Test("three FDEs listed 50,000 times each, with entries outside .eh_frame, compile three FDEs")
    func fewFDEsListedManyTimes() throws {
        var builder = CFIBuilder()
        let cie = builder.cie()
        let fdes = [
            builder.fde(cie: cie, start: 0x1000, length: 0x10, instructions: CFA.defCFAOffset(16)),
            builder.fde(cie: cie, start: 0x1010, length: 0x10, instructions: CFA.defCFAOffset(24)),
            builder.fde(cie: cie, start: 0x1020, length: 0x10, instructions: CFA.defCFAOffset(32)),
        ]
        builder.terminator()
        let headerAddress: UInt64 = 0x8_0000
        let repeats = 50_000
        // One entry in 10,000 points past the section, one at the CIE.
        var listed: [UInt64] = []
        for index in 0..<(3 * repeats) {
            switch index % 10_000 {
            case 17: listed.append(builder.address + UInt64(builder.bytes.count) + 0x100)
            case 29: listed.append(builder.address + UInt64(cie))
            default: listed.append(builder.address + UInt64(fdes[index % 3]))
            }
        }
        var bytes: [UInt8] = [1, 0x1b, 0x03, 0x3b]
        bytes += CFIBuilder.little(builder.address &- (headerAddress + 4), 4)
        bytes += CFIBuilder.little(UInt64(listed.count), 4)
        for address in listed {
            bytes += CFIBuilder.little(0x1000 &- headerAddress, 4) + CFIBuilder.little(address &- headerAddress, 4)
        }
        let started = ContinuousClock.now
        let header = try #require(decode(bytes, address: headerAddress))
        #expect(header.fdeAddresses == listed)
        let size = UInt64(builder.bytes.count)
        let offsets = header.fdeAddresses.map { address in
            let offset = address &- builder.address
            return offset < size ? Int(offset) : Int.max
        }
        let table = builder.compile(fdeOffsets: offsets)
        let elapsed = ContinuousClock.now - started
        // Distinct offsets: the three FDEs, the CIE and Int.max.
        #expect(table.statistics.duplicateFDEEntries == listed.count - 5)
        #expect(table.statistics.fdes == 3)
        #expect(table.statistics.malformedFDEs == 2)
        #expect(table.rows == builder.compile().rows)
        #expect(elapsed < .seconds(5))
    }

    @Test("a count far beyond the bytes is refused before anything is allocated")
    func hugeCounts() {
        let headerAddress: UInt64 = 0x8_0000
        let table = (0..<1000).flatMap { _ in CFIBuilder.little(0, 4) + CFIBuilder.little(0x10_0000 &- headerAddress, 4)
        }
        for (encoding, count) in [
            (UInt8(0x03), CFIBuilder.little(200_000, 4)), (0x03, CFIBuilder.little(UInt64(UInt32.max), 4)),
            (0x04, CFIBuilder.little(UInt64.max, 8)), (0x0c, CFIBuilder.little(UInt64(Int64.max), 8)),
            (0x0b, CFIBuilder.little(UInt64(UInt32.max), 4)), (0x01, CFIBuilder.uleb(UInt64.max)),
            (0x09, CFIBuilder.sleb(-1)), (0x03, CFIBuilder.little(0, 4)),
            (0x03, CFIBuilder.little(UInt64(table.count / 2 + 1), 4)),
        ] {
            var bytes: [UInt8] = [1, 0x1b, encoding, 0x3b]
            bytes += CFIBuilder.little(0x10_0000 &- (headerAddress + 4), 4)
            bytes += count
            bytes += table
            #expect(decode(bytes, address: headerAddress) == nil, "count \(count) in 0x\(hex(encoding))")
        }
    }
}

private func hex(_ value: UInt8) -> String {
    String(value, radix: 16)
}
