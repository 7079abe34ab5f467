// CFICompiler.swift: turns the FDEs of `.eh_frame` (found through `.eh_frame_hdr` or a linear walk) and
// `.debug_frame` into one sorted, de-duplicated row list, counting what was damaged or unsupported on the way.

import Logging

/// Compiles CFI sections into ``UnwindRow``s.
struct CFICompiler {
    /// The rows of one FDE: its range and the rules inside it, in address order.
    private struct CompiledFDE {
        var start: UInt64
        var end: UInt64
        var rows: [(address: UInt64, rule: UnwindRule, reason: UnsupportedReason?)]
        var fromDebugFrame: Bool
        /// Whether the instructions stopped early (already counted in ``UnwindTable/Statistics/malformedFDEs``).
        var isMalformed = false
    }

    /// Code ranges FDEs must lie in (the executable `PT_LOAD` segments); empty accepts any range.
    private let codeRanges: [Range<UInt64>]
    private let logger: Logger?
    private var fdes: [CompiledFDE] = []
    private(set) var statistics = UnwindTable.Statistics()
    /// The most rows kept over all FDEs: once reached, further FDEs are counted and left out, so a file cannot make
    /// the compiler's memory grow without bound.
    private let maximumRows: Int
    private var rowsKept = 0

    init(codeRanges: [Range<UInt64>], maximumRows: Int = .max, logger: Logger?) {
        self.codeRanges = codeRanges
        self.maximumRows = maximumRows
        self.logger = logger
    }

    private mutating func countMalformed(_ error: CFIEntryError, at offset: Int, in flavor: CFISection.Flavor) {
        self.statistics.malformedFDEs += 1
        self.logger?.debug(
            "malformed call frame information",
            metadata: [
                "cfi.section": "\(flavor == .ehFrame ? ".eh_frame" : ".debug_frame")",
                "cfi.offset": "\(offset)",
                "cfi.error": "\(error)",
            ]
        )
    }

    /// Adds the FDEs of a section held whole in memory (see ``add(_:fdeOffsets:)-reader``).
    mutating func add(_ section: CFISection, fdeOffsets: [Int]? = nil) {
        var reader = CFISectionReader(whole: section)
        self.add(&reader, fdeOffsets: fdeOffsets)
    }

    /// Adds the FDEs of a section read in pieces: through the offsets `.eh_frame_hdr` lists when given (sorted,
    /// so pieces are read in order), else by walking it. Stops at a failed read (``CFISectionReader/readFailure``).
    mutating func add(_ reader: inout CFISectionReader, fdeOffsets: [Int]? = nil) {
        self.statistics.cfiBytes += reader.size
        // A CIE shared by many FDEs is parsed once; a section of many distinct CIEs can't grow the cache unbounded.
        var interpreters: [Int: Result<CFIInterpreter, CFIEntryError>] = [:]
        if var offsets = fdeOffsets {
            // A header table may list one FDE many times: each is compiled once.
            offsets.sort()
            var distinct = 0
            for offset in offsets where distinct == 0 || offsets[distinct - 1] != offset {
                offsets[distinct] = offset
                distinct += 1
            }
            self.statistics.duplicateFDEEntries += offsets.count - distinct
            for offset in offsets[..<distinct] where reader.readFailure == nil {
                do throws(CFIEntryError) {
                    guard let (header, view) = try reader.entry(at: offset), !header.isCIE else {
                        throw CFIEntryError("the header's table points at no FDE")
                    }
                    self.add(header, in: view, reader: &reader, interpreters: &interpreters)
                } catch {
                    self.countMalformed(error, at: offset, in: reader.flavor)
                }
            }
        } else {
            var offset = 0
            while offset < reader.size, reader.readFailure == nil {
                let entry: (CFISection.EntryHeader, CFISection)?
                do throws(CFIEntryError) {
                    entry = try reader.entry(at: offset)
                } catch {
                    // A damaged length ends the walk: nothing after it can be found.
                    self.countMalformed(error, at: offset, in: reader.flavor)
                    break
                }
                guard let (header, view) = entry else {
                    offset += 4
                    continue
                }
                offset = header.end
                if !header.isCIE {
                    self.add(header, in: view, reader: &reader, interpreters: &interpreters)
                }
            }
        }
        self.statistics.largestCFIPieceBytes = max(self.statistics.largestCFIPieceBytes, reader.largestPieceBytes)
    }

    private mutating func add(
        _ header: CFISection.EntryHeader,
        in view: CFISection,
        reader: inout CFISectionReader,
        interpreters: inout [Int: Result<CFIInterpreter, CFIEntryError>]
    ) {
        guard self.rowsKept < self.maximumRows else {
            self.statistics.fdesOverRowLimit += 1
            return
        }
        if interpreters.count >= Self.maximumCachedCIEs, interpreters[header.cieOffset] == nil {
            interpreters.removeAll(keepingCapacity: true)
        }
        let interpreter = interpreters[header.cieOffset] ?? Self.interpreter(for: header, in: view, reader: &reader)
        interpreters[header.cieOffset] = interpreter
        do throws(CFIEntryError) {
            var machine = try interpreter.get()
            self.compile(header, with: &machine, in: view)
            interpreters[header.cieOffset] = .success(machine)
        } catch {
            self.countMalformed(error, at: header.offset, in: reader.flavor)
        }
    }

    /// CIEs whose interpreter is kept; real files have a handful.
    static let maximumCachedCIEs = 256

    private static func interpreter(
        for fde: CFISection.EntryHeader,
        in view: CFISection,
        reader: inout CFISectionReader
    ) -> Result<CFIInterpreter, CFIEntryError> {
        Result { () throws(CFIEntryError) in
            guard let (header, cieView) = try Self.entry(at: fde.cieOffset, in: view, reader: &reader), header.isCIE
            else {
                throw CFIEntryError("FDE at \(fde.offset) points at \(fde.cieOffset), which is not a CIE")
            }
            let cie = try CommonInformationEntry(header: header, in: cieView)
            return try CFIInterpreter(cie: cie, section: cieView)
        }
    }

    /// The entry at `offset` from `view` when it holds it, else read on its own.
    private static func entry(
        at offset: Int,
        in view: CFISection,
        reader: inout CFISectionReader
    ) throws(CFIEntryError) -> (CFISection.EntryHeader, CFISection)? {
        if view.held.contains(offset), let header = try? view.entryHeader(at: offset),
            header.end <= view.held.upperBound
        {
            return (header, view)
        }
        return try reader.detachedEntry(at: offset)
    }

    private func isCode(_ start: UInt64, _ end: UInt64) -> Bool {
        self.codeRanges.isEmpty || self.codeRanges.contains { $0.lowerBound <= start && end <= $0.upperBound }
    }

    private mutating func compile(
        _ header: CFISection.EntryHeader,
        with machine: inout CFIInterpreter,
        in section: CFISection
    ) {
        let fde: FrameDescriptionEntry
        do throws(CFIEntryError) {
            fde = try FrameDescriptionEntry(header: header, cie: machine.cie, in: section)
            guard self.isCode(fde.start, fde.end) else {
                throw CFIEntryError(
                    "range 0x\(String(fde.start, radix: 16))..<0x\(String(fde.end, radix: 16)) isn't code"
                )
            }
        } catch {
            self.countMalformed(error, at: header.offset, in: section.flavor)
            return
        }
        let signalFrame = machine.cie.isSignalFrame
        var compiled = CompiledFDE(
            start: fde.start,
            end: fde.end,
            rows: [],
            fromDebugFrame: section.flavor == .debugFrame
        )
        var cfiRows = 0
        do throws(CFIEntryError) {
            try machine.run(fde, in: section) { address, state in
                cfiRows += 1
                let (rule, reason) = UnwindRule.compile(state, signalFrame: signalFrame)
                if let last = compiled.rows.last, last.address == address {
                    compiled.rows.removeLast()
                }
                compiled.rows.append((address, rule, reason))
            }
        } catch {
            // Rows before the damage stay; from there to the FDE's end there is no information.
            self.countMalformed(error, at: header.offset, in: section.flavor)
            while let last = compiled.rows.last, last.address >= machine.location {
                compiled.rows.removeLast()
            }
            if machine.location < fde.end {
                compiled.rows.append((machine.location, .noInfo, nil))
            }
            compiled.isMalformed = true
        }
        self.statistics.cfiRows += cfiRows
        self.rowsKept += compiled.rows.count
        self.fdes.append(compiled)
    }

    /// Merges every FDE's rows into one sorted list: later FDEs win where ranges overlap, a ``UnwindRule/noInfo``
    /// row closes each FDE unless the next one starts there, and consecutive equal rules are merged.
    mutating func finish() -> (rows: [UnwindRow], addressRange: Range<UInt64>) {
        var candidates = self.fdes
        candidates.sort { ($0.start, $0.end) < ($1.start, $1.end) }
        // Keep .debug_frame FDEs only where .eh_frame has nothing.
        let ehFrame = EHFrameCoverage(candidates.filter { !$0.fromDebugFrame }.map { $0.start..<$0.end })
        candidates = candidates.filter { fde in
            guard fde.fromDebugFrame, ehFrame.intersects(fde.start..<fde.end) else {
                return true
            }
            self.statistics.redundantDebugFrameFDEs += 1
            return false
        }
        let base = candidates.first { $0.start < $0.end }?.start ?? 0
        var rows: [(address: UInt64, rule: UnwindRule, reason: UnsupportedReason?)] = []
        var highest = base
        for fde in candidates {
            guard fde.start < fde.end else {
                // An empty range compiles to nothing.
                self.statistics.fdes += fde.isMalformed ? 0 : 1
                continue
            }
            guard fde.end - base <= UInt64(UInt32.max) else {
                // The 8-byte row encoding stores addresses as 32-bit offsets from the base.
                self.statistics.malformedFDEs += fde.isMalformed ? 0 : 1
                continue
            }
            if fde.start < highest {
                self.statistics.overlappingFDEs += 1
            }
            while let last = rows.last, last.address >= fde.start {
                rows.removeLast()
            }
            rows.append(contentsOf: fde.rows.filter { $0.address >= fde.start && $0.address < fde.end })
            rows.append((fde.end, .noInfo, nil))
            highest = max(highest, fde.end)
            self.statistics.fdes += fde.isMalformed ? 0 : 1
            self.statistics.debugFrameFDEs += fde.fromDebugFrame && !fde.isMalformed ? 1 : 0
        }
        var merged: [UnwindRow] = []
        merged.reserveCapacity(rows.count)
        for row in rows where merged.last?.rule != row.rule {
            merged.append(UnwindRow(address: row.address, rule: row.rule))
            if let reason = row.reason {
                self.statistics.unsupported[reason, default: 0] += 1
                self.statistics.unsupportedRows += 1
            }
        }
        self.statistics.rows = merged.count
        return (merged, merged.isEmpty ? 0..<0 : base..<highest)
    }
}

/// The ranges `.eh_frame` covers, to find the `.debug_frame` FDEs that add something.
private struct EHFrameCoverage {
    private let starts: [UInt64]
    /// The largest end among the ranges up to each index.
    private let highestEnds: [UInt64]

    /// - Parameter ranges: Sorted by lower bound.
    init(_ ranges: [Range<UInt64>]) {
        self.starts = ranges.map(\.lowerBound)
        var highest: UInt64 = 0
        self.highestEnds = ranges.map { range in
            highest = max(highest, range.upperBound)
            return highest
        }
    }

    /// Whether `range` intersects one of the ranges.
    func intersects(_ range: Range<UInt64>) -> Bool {
        // Among the ranges starting before `range` ends, one reaches into it iff the furthest-reaching does.
        var low = 0
        var high = self.starts.count
        while low < high {
            let middle = low + (high - low) / 2
            if self.starts[middle] < range.upperBound {
                low = middle + 1
            } else {
                high = middle
            }
        }
        return low > 0 && self.highestEnds[low - 1] > range.lowerBound
    }
}
