// CFISection.swift: one call frame information section (`.eh_frame` or `.debug_frame`) and the framing of its
// entries: 32- or 64-bit lengths, the CIE id / CIE pointer field, zero terminators.

import HearthSymbolizer

/// The bytes of a `.eh_frame` or `.debug_frame` section, with what is needed to decode pointers in it.
struct CFISection: Sendable {
    /// The two section flavours differ in the CIE id, in how an FDE points at its CIE, and in CIE versions.
    enum Flavor: Sendable {
        case ehFrame
        case debugFrame
    }

    let data: ELFBytes
    let flavor: Flavor
    let bases: PointerBases

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

    /// Reads the entry header at `offset`. Returns nil for a zero terminator (a 4-byte zero length).
    func entryHeader(at offset: Int) throws(CFIEntryError) -> EntryHeader? {
        var cursor = CFICursor(self.data, from: offset, to: self.data.count)
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
        guard length <= UInt64(self.data.count - contentStart) else {
            throw CFIEntryError("entry at \(offset) of length \(length) runs past the section's end")
        }
        let end = contentStart + Int(length)
        cursor = CFICursor(self.data, from: contentStart, to: end)
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
                guard id < UInt64(self.data.count) else {
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

    /// Where a linear walk stopped: every FDE header found, and whether a damaged length ended the walk early.
    struct Walk: Sendable {
        var fdes: [EntryHeader] = []
        var stoppedEarly: CFIEntryError?
    }

    /// Walks the section entry by entry, skipping CIEs and zero terminators. A length that runs past the
    /// section's end ends the walk, since nothing after it can be found.
    func walkFDEs() -> Walk {
        var walk = Walk()
        var offset = 0
        while offset < self.data.count {
            do {
                guard let header = try self.entryHeader(at: offset) else {
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
