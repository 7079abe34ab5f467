// PointerEncoding.swift: the DW_EH_PE pointer encodings of `.eh_frame` and `.eh_frame_hdr` (value format plus
// what the value is relative to, optionally indirect), decoded against the bases of one ELF file.

/// A `DW_EH_PE_*` byte: the low nibble is the value's format, bits 4–6 what it is relative to, bit 7 indirection.
struct PointerEncoding: Hashable, Sendable {
    let rawValue: UInt8

    init(_ rawValue: UInt8) {
        self.rawValue = rawValue
    }

    /// `DW_EH_PE_absptr`: a full address; the default when a CIE has no 'R' augmentation.
    static let absolute = PointerEncoding(0x00)
    /// `DW_EH_PE_omit`: no value is present.
    static let omit = PointerEncoding(0xff)

    var isOmitted: Bool { self.rawValue == 0xff }
    var format: UInt8 { self.rawValue & 0x0f }
    var application: UInt8 { self.rawValue & 0x70 }
    var isIndirect: Bool { self.rawValue & 0x80 != 0 }

    /// Whether the format and application are ones this reader knows (so a bad byte is caught at the CIE).
    var isValid: Bool {
        if self.isOmitted {
            return true
        }
        let formats: Set<UInt8> = [0x00, 0x01, 0x02, 0x03, 0x04, 0x08, 0x09, 0x0a, 0x0b, 0x0c]
        return formats.contains(self.format) && self.application <= 0x50
    }
}

/// The base addresses relative encodings refer to, and a way to follow `DW_EH_PE_indirect` pointers.
struct PointerBases {
    /// The link-time address of the section being read (byte 0 of its data), for `DW_EH_PE_pcrel`.
    var section: UInt64
    /// `DW_EH_PE_textrel`'s base: the `.text` address.
    var text: UInt64?
    /// `DW_EH_PE_datarel`'s base: `.got` for `.eh_frame`, the header itself for `.eh_frame_hdr`.
    var data: UInt64?
    /// The size of `DW_EH_PE_absptr` values: 8 in ELF64, or a `.debug_frame` CIE's `address_size`.
    var addressSize: Int = 8
    /// Reads the 8-byte pointer stored at a link-time address, for `DW_EH_PE_indirect`.
    var loadPointer: (@Sendable (UInt64) -> UInt64?)?
}

extension CFICursor {
    /// Reads a value encoded with `encoding`.
    ///
    /// - Parameters:
    ///   - function: The enclosing function's start, for `DW_EH_PE_funcrel`.
    ///   - dereference: Whether to follow `DW_EH_PE_indirect`; values that are only skipped (personality
    ///     routines) need not be readable.
    mutating func pointer(
        _ encoding: PointerEncoding,
        bases: PointerBases,
        function: UInt64? = nil,
        dereference: Bool = true
    ) throws(CFIEntryError) -> UInt64 {
        guard !encoding.isOmitted else {
            throw CFIEntryError("reading an omitted pointer")
        }
        if encoding.application == 0x50 {
            try self.align(to: bases.addressSize, origin: bases.section)
        }
        let fieldAddress = bases.section &+ UInt64(self.position)
        let value = try self.encodedValue(format: encoding.format, addressSize: bases.addressSize)
        let base: UInt64
        switch encoding.application {
        case 0x00, 0x50:
            base = 0
        case 0x10:
            base = fieldAddress
        case 0x20:
            guard let text = bases.text else { throw CFIEntryError("DW_EH_PE_textrel without a .text section") }
            base = text
        case 0x30:
            guard let data = bases.data else { throw CFIEntryError("DW_EH_PE_datarel without a data base") }
            base = data
        case 0x40:
            guard let function else { throw CFIEntryError("DW_EH_PE_funcrel outside a function") }
            base = function
        default:
            throw CFIEntryError("pointer application 0x\(String(encoding.application, radix: 16))")
        }
        let address = base &+ value
        guard encoding.isIndirect, dereference else {
            return address
        }
        guard let loaded = bases.loadPointer?(address) else {
            throw CFIEntryError("DW_EH_PE_indirect pointer at 0x\(String(address, radix: 16)) is not in the file")
        }
        return loaded
    }

    /// Reads a value in an encoding's format only, as FDE address ranges are (they are lengths, never relative).
    mutating func encodedValue(format: UInt8, addressSize: Int) throws(CFIEntryError) -> UInt64 {
        switch format {
        case 0x00: return addressSize == 4 ? UInt64(try self.u32()) : try self.u64()
        case 0x01: return try self.uleb128()
        case 0x02: return UInt64(try self.u16())
        case 0x03: return UInt64(try self.u32())
        case 0x04: return try self.u64()
        case 0x08:
            return addressSize == 4 ? UInt64(bitPattern: Int64(Int32(bitPattern: try self.u32()))) : try self.u64()
        case 0x09: return UInt64(bitPattern: try self.sleb128())
        case 0x0a: return UInt64(bitPattern: Int64(Int16(bitPattern: try self.u16())))
        case 0x0b: return UInt64(bitPattern: Int64(Int32(bitPattern: try self.u32())))
        case 0x0c: return try self.u64()
        default: throw CFIEntryError("pointer format 0x\(String(format, radix: 16))")
        }
    }
}
