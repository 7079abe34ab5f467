// CFISection.swift: one call frame information section (`.eh_frame` or `.debug_frame`) and the framing of its
// entries: 32- or 64-bit lengths, the CIE id / CIE pointer field, zero terminators.

import HearthELF

/// A view of a `.eh_frame` or `.debug_frame` section: the bytes of one piece of it (or all of it), addressed by
/// section offset, with what is needed to decode pointers in it.
struct CFISection: Sendable {
    /// The two section flavours differ in the CIE id, in how an FDE points at its CIE, and in CIE versions.
    enum Flavor: Sendable {
        case ehFrame
        case debugFrame
    }

    /// The bytes held, section offsets ``start`` ..< ``start`` + `data.count`.
    let data: ELFBytes
    /// The section offset of `data`'s first byte.
    let start: Int
    /// The size of the whole section, of which `data` may be a piece.
    let size: Int
    let flavor: Flavor
    let bases: PointerBases

    /// A view holding the whole section.
    init(data: ELFBytes, flavor: Flavor, bases: PointerBases) {
        self.init(piece: data, at: 0, of: data.count, flavor: flavor, bases: bases)
    }

    /// A view holding the bytes at section offsets `start ..< start + piece.count` of a `size`-byte section.
    init(piece: ELFBytes, at start: Int, of size: Int, flavor: Flavor, bases: PointerBases) {
        self.data = piece
        self.start = start
        self.size = size
        self.flavor = flavor
        self.bases = bases
    }

    /// The section offsets this view holds.
    var held: Range<Int> { self.start..<self.start + self.data.count }

    /// A cursor over section offsets `start ..< end`, which must lie in ``held`` to be read.
    func cursor(from start: Int, to end: Int) -> CFICursor {
        CFICursor(self.data, base: self.start, from: start, to: end)
    }

    /// An entry's length and id fields, read before knowing whether it is a CIE or an FDE.
    struct EntryHeader: Sendable {
        /// Where the entry starts (its length field) in the section.
        var offset: Int
        /// Where the entry's content after the id / CIE pointer field starts.
        var bodyStart: Int
        /// One past the entry's last byte.
        var end: Int
        /// Whether the entry is a CIE (otherwise an FDE).
        var isCIE: Bool
        /// For an FDE, the section offset of its CIE.
        var cieOffset: Int
        /// Whether the entry uses the 64-bit DWARF format (offsets are 8 bytes).
        var is64BitFormat: Bool
    }

    /// Reads the entry header at `offset`, whose first ``maximumHeaderBytes`` (or up to the section's end) this view
    /// must hold. Returns nil for a zero terminator (a 4-byte zero length).
    func entryHeader(at offset: Int) throws(CFIEntryError) -> EntryHeader? {
        var cursor = self.cursor(from: offset, to: self.size)
        var length = UInt64(try cursor.u32())
        if length == 0 {
            return nil
        }
        var is64 = false
        if length == 0xffff_ffff {
            length = try cursor.u64()
            is64 = true
        } else if length >= 0xffff_fff0 {
            throw CFIEntryError("reserved initial length 0x\(String(length, radix: 16)) at \(offset)")
        }
        let contentStart = cursor.position
        guard length <= UInt64(self.size - contentStart) else {
            throw CFIEntryError("entry at \(offset) of length \(length) runs past the section's end")
        }
        let end = contentStart + Int(length)
        cursor = self.cursor(from: contentStart, to: end)
        let idField = cursor.position
        let id = is64 ? try cursor.u64() : UInt64(try cursor.u32())
        let isCIE: Bool
        var cieOffset = 0
        switch self.flavor {
        case .ehFrame:
            // In .eh_frame the id is 0 for a CIE; for an FDE, the distance back from this field to the CIE.
            isCIE = id == 0
            if !isCIE {
                guard id <= UInt64(idField) else {
                    throw CFIEntryError("FDE at \(offset) points \(id) bytes back from \(idField)")
                }
                cieOffset = idField - Int(id)
            }
        case .debugFrame:
            // In .debug_frame the id is all ones for a CIE; for an FDE, the CIE's offset in the section.
            isCIE = id == (is64 ? UInt64.max : 0xffff_ffff)
            if !isCIE {
                guard id < UInt64(self.size) else {
                    throw CFIEntryError("FDE at \(offset) points to CIE offset \(id) outside the section")
                }
                cieOffset = Int(id)
            }
        }
        return EntryHeader(
            offset: offset,
            bodyStart: cursor.position,
            end: end,
            isCIE: isCIE,
            cieOffset: cieOffset,
            is64BitFormat: is64
        )
    }

    /// An entry's header is at most a 12-byte length and an 8-byte id.
    static let maximumHeaderBytes = 20

    /// Where a linear walk stopped: every FDE header found, and whether a damaged length ended the walk early.
    struct Walk: Sendable {
        var fdes: [EntryHeader] = []
        var stoppedEarly: CFIEntryError?
    }

    /// Walks a view holding the whole section entry by entry (as ``CFICompiler`` does through a
    /// ``CFISectionReader``), skipping CIEs and zero terminators.
    func walkFDEs() -> Walk {
        var walk = Walk()
        var reader = CFISectionReader(whole: self)
        var offset = 0
        while offset < self.size {
            do {
                guard let (header, _) = try reader.entry(at: offset) else {
                    offset += 4
                    continue
                }
                if !header.isCIE {
                    walk.fdes.append(header)
                }
                offset = header.end
            } catch {
                walk.stoppedEarly = error
                break
            }
        }
        return walk
    }
}

/// Reads a CFI section in pieces: a file a workload controls may declare any size, so the bytes held at once are
/// one piece (``pieceBytes``, or one entry up to ``maximumEntryBytes``) and a CIE, never the whole section.
///
/// Entries are asked for in ascending offset order (a linear walk, or `.eh_frame_hdr`'s table sorted), so each
/// piece is read once; a CIE outside the current piece is read on its own without moving it.
struct CFISectionReader {
    /// Reads the section bytes at a range of section offsets.
    typealias Read = (Range<Int>) throws(ELFError) -> [UInt8]

    let size: Int
    let flavor: CFISection.Flavor
    let bases: PointerBases
    /// How much is read at a time when the walk moves past the current piece.
    let pieceBytes: Int
    /// The largest entry accepted; a larger one is malformed (real FDEs are well under a kilobyte).
    let maximumEntryBytes: Int
    private let read: Read?
    /// The piece the walk is in.
    private var current: CFISection
    /// The largest piece held at once, for the statistics.
    private(set) var largestPieceBytes = 0
    /// A read of the file that failed (I/O, a file that shrank, a stalled mount): the section can't be compiled.
    private(set) var readFailure: ELFError?

    /// A reader over a view that already holds the whole section (tests, small sections): nothing more is read.
    init(whole section: CFISection) {
        self.size = section.size
        self.flavor = section.flavor
        self.bases = section.bases
        self.pieceBytes = section.size
        self.maximumEntryBytes = section.size
        self.read = nil
        self.current = section
        self.largestPieceBytes = section.data.count
    }

    /// A reader of a `size`-byte section whose bytes `read` returns on demand.
    init(
        size: Int,
        flavor: CFISection.Flavor,
        bases: PointerBases,
        pieceBytes: Int,
        maximumEntryBytes: Int,
        read: @escaping Read
    ) {
        self.size = size
        self.flavor = flavor
        self.bases = bases
        self.pieceBytes = max(pieceBytes, CFISection.maximumHeaderBytes)
        self.maximumEntryBytes = maximumEntryBytes
        self.read = read
        self.current = CFISection(
            piece: ELFBytes(bytes: [], littleEndian: true),
            at: 0,
            of: size,
            flavor: flavor,
            bases: bases
        )
    }

    /// The entry at section offset `offset` and a view holding all of it, or nil for a zero terminator. The
    /// current piece moves forward to it when needed.
    mutating func entry(at offset: Int) throws(CFIEntryError) -> (CFISection.EntryHeader, CFISection)? {
        try self.entry(at: offset, moving: true)
    }

    /// Like ``entry(at:)``, but a piece read for it is held only by the view returned: for a CIE, which may lie
    /// anywhere before the FDEs that use it.
    mutating func detachedEntry(at offset: Int) throws(CFIEntryError) -> (CFISection.EntryHeader, CFISection)? {
        try self.entry(at: offset, moving: false)
    }

    private mutating func entry(
        at offset: Int,
        moving: Bool
    ) throws(CFIEntryError) -> (CFISection.EntryHeader, CFISection)? {
        guard offset >= 0, offset < self.size else {
            throw CFIEntryError("entry offset \(offset) lies outside the \(self.size)-byte section")
        }
        let headerEnd = offset + min(CFISection.maximumHeaderBytes, self.size - offset)
        var view = try self.view(holding: offset..<headerEnd, moving: moving)
        guard let header = try view.entryHeader(at: offset) else {
            return nil
        }
        // Checked wherever the entry lies, so the same file gives the same table whatever the piece size.
        guard header.end - offset <= self.maximumEntryBytes else {
            throw CFIEntryError(
                "entry at \(offset) is \(header.end - offset) bytes, above the limit of \(self.maximumEntryBytes)"
            )
        }
        if header.end > view.held.upperBound {
            view = try self.view(holding: offset..<header.end, moving: moving)
        }
        return (header, view)
    }

    /// A view holding `range`: the current piece if it does, else a new read (the next piece when `moving`, else
    /// `range` alone).
    private mutating func view(holding range: Range<Int>, moving: Bool) throws(CFIEntryError) -> CFISection {
        let held = self.current.held
        if held.lowerBound <= range.lowerBound, range.upperBound <= held.upperBound {
            return self.current
        }
        guard let read = self.read, self.readFailure == nil else {
            throw CFIEntryError("bytes \(range) of the section are not held")
        }
        let wanted =
            moving
            ? range.lowerBound..<min(self.size, range.lowerBound + max(range.count, self.pieceBytes)) : range
        let bytes: [UInt8]
        do {
            bytes = try read(wanted)
        } catch {
            self.readFailure = error
            throw CFIEntryError("reading bytes \(wanted) of the section", cause: error)
        }
        let view = CFISection(
            piece: ELFBytes(bytes: bytes, littleEndian: true),
            at: wanted.lowerBound,
            of: self.size,
            flavor: self.flavor,
            bases: self.bases
        )
        if moving {
            // Drop the old piece before the next one grows the total.
            self.current = view
        }
        self.largestPieceBytes = max(self.largestPieceBytes, bytes.count + (moving ? 0 : self.current.data.count))
        return view
    }
}
