// EHFrameHeader.swift: `.eh_frame_hdr`, the linker's sorted index of FDEs, used to find every FDE without trusting
// the lengths of the entries in between (one damaged length can't hide the rest of `.eh_frame`).

import HearthELF

/// The search table of a `.eh_frame_hdr` section.
struct EHFrameHeader: Sendable {
    /// The address of `.eh_frame` the header points at.
    var ehFramePointer: UInt64
    /// The `.eh_frame` addresses of the FDEs, in the order of the table (sorted by function start).
    var fdeAddresses: [UInt64]

    /// Parses the header. Returns nil when it has no usable table (no table, an unknown version or encoding, or
    /// a count larger than the section could hold), so the caller falls back to a linear walk.
    init?(data: ELFBytes, address: UInt64) {
        let bases = PointerBases(section: address, text: nil, data: address)
        var cursor = CFICursor(data, from: 0, to: data.count)
        guard let version = try? cursor.u8(), version == 1,
            let framePointerEncoding = try? cursor.u8(),
            let countEncoding = try? cursor.u8(),
            let tableEncoding = try? cursor.u8()
        else {
            return nil
        }
        let countFormat = PointerEncoding(countEncoding)
        let table = PointerEncoding(tableEncoding)
        guard countFormat.isValid, !countFormat.isOmitted, !countFormat.isIndirect, table.isValid,
            !table.isOmitted, !table.isIndirect,
            let framePointer = try? cursor.pointer(PointerEncoding(framePointerEncoding), bases: bases),
            let count = try? cursor.pointer(countFormat, bases: bases)
        else {
            return nil
        }
        // Each table entry holds two values of at least one byte, so the section bounds the count (and the
        // allocation below) before anything is reserved.
        guard count > 0, count <= UInt64(cursor.remaining / 2) else {
            return nil
        }
        var addresses: [UInt64] = []
        addresses.reserveCapacity(Int(count))
        for _ in 0..<count {
            guard (try? cursor.pointer(table, bases: bases)) != nil,
                let fde = try? cursor.pointer(table, bases: bases)
            else {
                return nil
            }
            addresses.append(fde)
        }
        self.ehFramePointer = framePointer
        self.fdeAddresses = addresses
    }
}
