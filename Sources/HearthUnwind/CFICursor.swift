// CFICursor.swift: sequential reads through call frame information (fixed-width fields, LEB128, blocks), each
// bounded by the end of the entry being read, on top of HearthSymbolizer's bounds-checked `ELFBytes`.

import HearthELF

/// A read position inside one CFI entry (or one instruction stream) that never moves past `end`.
struct CFICursor {
    let data: ELFBytes
    /// The position of `data`'s first byte: a section read in pieces keeps section offsets (pointer encodings are
    /// relative to them) while holding only the piece.
    let base: Int
    /// The next byte to read.
    private(set) var position: Int
    /// One past the last byte this cursor may read.
    let end: Int

    init(_ data: ELFBytes, base: Int = 0, from start: Int, to end: Int) {
        self.data = data
        self.base = base
        self.end = max(0, min(end, base + data.count))
        // A start before the bytes held can only come from damaged input: make the cursor empty rather than wrap.
        self.position = start < base ? self.end : start
    }

    var isAtEnd: Bool { self.position >= self.end }
    var remaining: Int { max(0, self.end - self.position) }

    private mutating func claim(_ width: Int) throws(CFIEntryError) -> Int {
        guard width >= 0, width <= self.remaining else {
            throw CFIEntryError("\(width)-byte read at \(self.position) runs past the entry's end \(self.end)")
        }
        defer { self.position += width }
        return self.position
    }

    private func checked<T>(_ read: () throws(ELFError) -> T) throws(CFIEntryError) -> T {
        do {
            return try read()
        } catch {
            throw CFIEntryError("field outside the section", cause: error)
        }
    }

    mutating func u8() throws(CFIEntryError) -> UInt8 {
        let at = try self.claim(1)
        return try self.checked { () throws(ELFError) in try self.data.u8(at - self.base) }
    }

    mutating func u16() throws(CFIEntryError) -> UInt16 {
        let at = try self.claim(2)
        return try self.checked { () throws(ELFError) in try self.data.u16(at - self.base) }
    }

    mutating func u32() throws(CFIEntryError) -> UInt32 {
        let at = try self.claim(4)
        return try self.checked { () throws(ELFError) in try self.data.u32(at - self.base) }
    }

    mutating func u64() throws(CFIEntryError) -> UInt64 {
        let at = try self.claim(8)
        return try self.checked { () throws(ELFError) in try self.data.u64(at - self.base) }
    }

    /// An unsigned LEB128 value. Bits beyond 64 must be zero; longer encodings are rejected.
    mutating func uleb128() throws(CFIEntryError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try self.u8()
            let payload = UInt64(byte & 0x7f)
            if shift < 64 {
                let shifted = payload << shift
                guard shifted >> shift == payload else {
                    throw CFIEntryError("ULEB128 overflows 64 bits at \(self.position)")
                }
                result |= shifted
            } else if payload != 0 {
                throw CFIEntryError("ULEB128 overflows 64 bits at \(self.position)")
            }
            if byte & 0x80 == 0 {
                return result
            }
            shift += 7
            guard shift < 70 else {
                throw CFIEntryError("ULEB128 longer than 10 bytes at \(self.position)")
            }
        }
    }

    /// A signed LEB128 value, sign-extended from its last byte.
    mutating func sleb128() throws(CFIEntryError) -> Int64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte = try self.u8()
            if shift < 64 {
                result |= UInt64(byte & 0x7f) << shift
            }
            shift += 7
            if byte & 0x80 == 0 {
                if shift < 64, byte & 0x40 != 0 {
                    result |= ~0 << shift
                }
                return Int64(bitPattern: result)
            }
            guard shift < 70 else {
                throw CFIEntryError("SLEB128 longer than 10 bytes at \(self.position)")
            }
        }
    }

    /// `count` raw bytes (a DWARF expression block).
    mutating func bytes(_ count: UInt64) throws(CFIEntryError) -> ArraySlice<UInt8> {
        guard count <= UInt64(self.remaining) else {
            throw CFIEntryError("\(count)-byte block at \(self.position) runs past the entry's end \(self.end)")
        }
        let at = try self.claim(Int(count))
        return self.data.bytes[at - self.base..<at - self.base + Int(count)]
    }

    /// Moves the position forward by `count` bytes, within bounds.
    mutating func skip(_ count: UInt64) throws(CFIEntryError) {
        _ = try self.bytes(count)
    }

    /// Moves the position to the next multiple of `alignment` relative to `origin` (for `DW_EH_PE_aligned`).
    mutating func align(to alignment: Int, origin: UInt64) throws(CFIEntryError) {
        let address = origin &+ UInt64(self.position)
        let misalignment = Int(address % UInt64(alignment))
        if misalignment != 0 {
            try self.skip(UInt64(alignment - misalignment))
        }
    }
}
