// ReadelfComparisonTests.swift: compiles the unwind tables of libc, libstdc++ and libswiftCore and checks every row
// `readelf --debug-dump=frames-interp` prints against them: the same CFA and RBP rule, or a counted "unsupported".

import Foundation
import HearthUnwind
import Testing

/// What readelf's row says our row must be.
private enum Expectation {
    /// Exactly this rule (readelf's `u` for RBP also accepts ``UnwindRule/RBPRule/undefined``).
    case rule(UnwindRule, rbpMayBeUndefined: Bool)
    /// A `.plt` rule, or unsupported for any other CFA expression.
    case pltOrUnsupported
    /// `u` for the return address: stop (DW_CFA_undefined) or unsupported (never mentioned).
    case stopOrUnsupported
    case signalFrame
    /// Something the format can't express.
    case unsupported
}

private func parseOffset(_ text: Substring) -> Int64? {
    Int64(text.hasPrefix("+") ? text.dropFirst() : text)
}

private func expectation(for row: ReadelfFrames.Row, signalFrame: Bool) -> Expectation {
    if signalFrame {
        return .signalFrame
    }
    let returnAddress = row.registers["ra"] ?? "u"
    if returnAddress == "u" {
        return .stopOrUnsupported
    }
    guard returnAddress == "c-8" else {
        return .unsupported
    }
    if row.cfa == "exp" {
        return .pltOrUnsupported
    }
    let kind: UnwindRule.Kind
    if row.cfa.hasPrefix("rsp") {
        kind = .cfaRSP
    } else if row.cfa.hasPrefix("rbp") {
        kind = .cfaRBP
    } else {
        return .unsupported
    }
    guard let offset = parseOffset(row.cfa.dropFirst(3)), let cfaOffset = Int16(exactly: offset) else {
        return .unsupported
    }
    let rbp = row.registers["rbp"] ?? "u"
    switch rbp {
    case "u":
        return .rule(UnwindRule(kind: kind, cfaOffset: cfaOffset), rbpMayBeUndefined: true)
    case "s":
        return .rule(UnwindRule(kind: kind, cfaOffset: cfaOffset), rbpMayBeUndefined: false)
    default:
        guard rbp.hasPrefix("c"), let saved = parseOffset(rbp.dropFirst()), saved % 8 == 0,
            UnwindRow.rbpOffsetRange.contains(saved)
        else {
            return .unsupported
        }
        let rule = UnwindRule(kind: kind, cfaOffset: cfaOffset, rbp: .saved(atCFAOffset: Int16(saved)))
        return .rule(rule, rbpMayBeUndefined: false)
    }
}

/// How the rows readelf prints compare with a table.
private struct Comparison {
    var checked = 0
    var matched = 0
    var unsupported = 0
    var mismatches: [String] = []
    /// Rows readelf prints, counting an FDE without instructions as the one row its CIE gives it.
    var readelfRows = 0
    var readelfFDEs = 0
    /// Our rows at addresses where readelf shows no change (no row, no FDE start or end): should be none.
    var extraRows: [String] = []
}

/// The other direction: every row of ours starts where readelf prints a row or an FDE begins, and every
/// no-info row sits at an FDE's end, outside every FDE.
private func findExtraRows(_ table: UnwindTable, _ frames: ReadelfFrames) -> [String] {
    var starts = Set<UInt64>()
    var ends = Set<UInt64>()
    var ranges: [Range<UInt64>] = []
    for fde in frames.entries where !fde.isCIE && !fde.range.isEmpty {
        starts.insert(fde.range.lowerBound)
        ends.insert(fde.range.upperBound)
        ranges.append(fde.range)
        for row in fde.rows where fde.range.contains(row.location) {
            starts.insert(row.location)
        }
    }
    ranges.sort { $0.lowerBound < $1.lowerBound }
    func isCovered(_ address: UInt64) -> Bool {
        // The last range starting at or before the address is the only one that can hold it (no overlaps).
        var low = 0
        var high = ranges.count
        while low < high {
            let middle = (low + high) / 2
            if ranges[middle].lowerBound <= address { low = middle + 1 } else { high = middle }
        }
        return low > 0 && ranges[low - 1].contains(address)
    }
    var extra: [String] = []
    for row in table.rows {
        let expected =
            row.rule == .noInfo ? ends.contains(row.address) && !isCovered(row.address) : starts.contains(row.address)
        if !expected {
            extra.append("\(row)")
        }
    }
    return extra
}

private func compare(_ table: UnwindTable, with frames: ReadelfFrames) -> Comparison {
    var result = Comparison()
    var cies: [UInt64: ReadelfFrames.Entry] = [:]
    for entry in frames.entries where entry.isCIE {
        cies[entry.offset] = entry
    }
    for fde in frames.entries where !fde.isCIE {
        result.readelfFDEs += 1
        guard !fde.range.isEmpty else { continue }
        let cie = cies[fde.cieOffset]
        var rows = fde.rows.filter { fde.range.contains($0.location) }
        if fde.rows.isEmpty, var initial = cie?.rows.last {
            // No instructions: the CIE's initial rules hold over the whole range.
            initial.location = fde.range.lowerBound
            rows = [initial]
        }
        result.readelfRows += rows.count
        let signalFrame = cie?.augmentation.contains("S") ?? false
        for row in rows {
            result.checked += 1
            guard let ours = table.row(for: row.location)?.rule else {
                result.mismatches.append("0x\(String(row.location, radix: 16)): no row")
                continue
            }
            let ok: Bool
            switch expectation(for: row, signalFrame: signalFrame) {
            case .rule(let expected, let rbpMayBeUndefined):
                var normalized = ours
                if rbpMayBeUndefined, ours.rbp == .undefined {
                    normalized.rbp = .unchanged
                }
                // An unsupported row here would be a bug: readelf shows a rule the format can express.
                ok = normalized == expected
            case .pltOrUnsupported:
                ok = ours.kind == .plt || ours.kind == .unsupported
            case .stopOrUnsupported:
                ok = ours.kind == .stop || ours.kind == .unsupported
            case .signalFrame:
                ok = ours.kind == .signalFrame
            case .unsupported:
                ok = ours.kind == .unsupported
            }
            if ok {
                result.matched += 1
                result.unsupported += ours.kind == .unsupported ? 1 : 0
            } else if result.mismatches.count < 20 {
                let printed = row.registers.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                result.mismatches.append(
                    "0x\(String(row.location, radix: 16)): readelf \(row.cfa) \(printed.joined(separator: " ")), ours \(ours)"
                )
            } else {
                result.mismatches.append("…")
            }
        }
    }
    result.extraRows = findExtraRows(table, frames)
    return result
}

@Suite("Unwind tables against readelf")
struct ReadelfComparisonTests {
    struct Library: Sendable, CustomTestStringConvertible {
        var name: String
        var path: String
        /// The CFI row count measured on this machine kind (docs: unwinding.md, section 1).
        var documentedRows: Int
        /// The largest share of unsupported rows accepted.
        var maximumUnsupportedShare: Double

        var testDescription: String { self.name }
    }

    static let libraries = [
        Library(name: "libc", path: SystemLibraries.libc, documentedRows: 23_800, maximumUnsupportedShare: 0.005),
        Library(
            name: "libstdc++",
            path: SystemLibraries.libstdcxx,
            documentedRows: 29_300,
            maximumUnsupportedShare: 0.005
        ),
        Library(
            name: "libswiftCore",
            path: SystemLibraries.libswiftCore,
            documentedRows: 72_000,
            maximumUnsupportedShare: 0.005
        ),
    ]

    @Test("every row readelf prints has the same CFA and RBP rule in our table", arguments: Self.libraries)
    func matchesReadelf(library: Library) throws {
        let started = ContinuousClock.now
        let table = try UnwindTable(contentsOf: library.path)
        let elapsed = ContinuousClock.now - started
        let frames = try ReadelfFrames.load(library.path)
        let result = compare(table, with: frames)
        let statistics = table.statistics
        let share = Double(statistics.unsupportedRows) / Double(max(1, statistics.rows))
        print(
            """
            \(library.name): \(statistics.fdes) FDEs, \(statistics.cfiRows) CFI rows, \(statistics.rows) table rows \
            (\(statistics.encodedBytes) bytes), \(statistics.unsupportedRows) unsupported \
            (\(String(format: "%.3f", share * 100))%: \(statistics.unsupported)), \(statistics.malformedFDEs) malformed, \
            \(statistics.overlappingFDEs) overlapping; readelf: \(result.readelfFDEs) FDEs, \(result.readelfRows) rows, \
            \(result.checked) checked, \(result.matched) matched, \(result.unsupported) unsupported, \
            \(result.mismatches.count) mismatched; compiled in \(elapsed)
            """
        )
        #expect(result.mismatches.isEmpty, "\(result.mismatches.joined(separator: "\n"))")
        #expect(result.extraRows.isEmpty, "\(result.extraRows.prefix(20).joined(separator: "\n"))")
        #expect(result.checked > library.documentedRows / 2)
        #expect(result.matched == result.checked)
        #expect(statistics.malformedFDEs == 0)
        #expect(statistics.fdes == result.readelfFDEs)
        // Unsupported rows are rare both in the table and among the rows readelf prints.
        #expect(share < library.maximumUnsupportedShare)
        #expect(Double(result.unsupported) / Double(max(1, result.checked)) < library.maximumUnsupportedShare)
        // The row counts are those of unwinding.md's table: readelf's, and ours (which drops rows repeating
        // the previous rule but adds a no-info row after FDEs followed by a gap).
        let documented = Double(library.documentedRows)
        #expect(Double(result.readelfRows) > documented * 0.75 && Double(result.readelfRows) < documented * 1.25)
        #expect(Double(statistics.rows) > documented * 0.6 && Double(statistics.rows) < documented * 1.4)
        // Before merging, one CFI row per row readelf prints.
        #expect(statistics.cfiRows == result.readelfRows)
    }
}
