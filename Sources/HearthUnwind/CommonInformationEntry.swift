// CommonInformationEntry.swift: a CIE, the part of call frame information shared by many FDEs: alignment factors,
// the return-address column, the augmentation ("z", "R", "P", "L", "S") and the initial instructions.

/// A parsed CIE.
struct CommonInformationEntry: Sendable {
    /// Where the CIE starts in its section.
    var offset: Int
    var version: UInt8
    /// The augmentation string, such as `zR` or `zPLR`, or `zRS` for a signal trampoline.
    var augmentation: String
    /// Multiplies advance-location operands.
    var codeAlignment: UInt64
    /// Multiplies register-offset operands (−8 on x86-64).
    var dataAlignment: Int64
    /// The column holding the return address (16 on x86-64).
    var returnAddressRegister: UInt64
    /// How FDE addresses are encoded ('R'); absolute when absent.
    var fdePointerEncoding: PointerEncoding = .absolute
    /// How LSDA pointers are encoded ('L'), which FDEs carry in their augmentation data.
    var lsdaEncoding: PointerEncoding = .omit
    /// Whether FDEs using this CIE carry augmentation data preceded by its length ('z').
    var hasAugmentationData = false
    /// Whether FDEs using this CIE describe a signal trampoline ('S').
    var isSignalFrame = false
    /// The size of addresses in `.debug_frame` FDEs (version 4 CIEs state it; otherwise the ELF class's).
    var addressSize = 8
    /// Segment selector bytes before each `.debug_frame` FDE address (version 4 only; normally 0).
    var segmentSelectorSize = 0
    /// The section range of the initial instructions.
    var instructions: Range<Int>

    /// Parses the CIE whose header was read by ``CFISection/entryHeader(at:)``.
    init(header: CFISection.EntryHeader, in section: CFISection) throws(CFIEntryError) {
        precondition(header.isCIE)
        var cursor = section.cursor(from: header.bodyStart, to: header.end)
        self.offset = header.offset
        self.version = try cursor.u8()
        switch section.flavor {
        case .ehFrame:
            guard self.version == 1 || self.version == 3 else {
                throw CFIEntryError("CIE at \(header.offset) has .eh_frame version \(self.version)")
            }
        case .debugFrame:
            guard self.version == 1 || self.version == 3 || self.version == 4 else {
                throw CFIEntryError("CIE at \(header.offset) has .debug_frame version \(self.version)")
            }
        }
        var augmentationBytes: [UInt8] = []
        while true {
            let byte = try cursor.u8()
            if byte == 0 { break }
            augmentationBytes.append(byte)
        }
        self.augmentation = String(decoding: augmentationBytes, as: UTF8.self)
        if self.version == 4 {
            self.addressSize = Int(try cursor.u8())
            self.segmentSelectorSize = Int(try cursor.u8())
            guard self.addressSize == 4 || self.addressSize == 8, self.segmentSelectorSize <= 8 else {
                throw CFIEntryError("CIE at \(header.offset): address size \(self.addressSize)")
            }
        } else {
            self.addressSize = section.bases.addressSize
        }
        self.codeAlignment = try cursor.uleb128()
        self.dataAlignment = try cursor.sleb128()
        self.returnAddressRegister = self.version == 1 ? UInt64(try cursor.u8()) : try cursor.uleb128()
        self.instructions = 0..<0

        guard let first = augmentationBytes.first else {
            self.instructions = cursor.position..<header.end
            return
        }
        // Without 'z' an augmentation can't be skipped, so only the empty one (handled above) is readable.
        guard first == UInt8(ascii: "z") else {
            throw CFIEntryError("CIE at \(header.offset) has unknown augmentation \"\(self.augmentation)\"")
        }
        self.hasAugmentationData = true
        let dataLength = try cursor.uleb128()
        let dataStart = cursor.position
        try cursor.skip(dataLength)
        var data = section.cursor(from: dataStart, to: cursor.position)
        var bases = section.bases
        bases.addressSize = self.addressSize
        for letter in augmentationBytes.dropFirst() {
            switch letter {
            case UInt8(ascii: "R"):
                self.fdePointerEncoding = PointerEncoding(try data.u8())
                guard self.fdePointerEncoding.isValid, !self.fdePointerEncoding.isOmitted else {
                    throw CFIEntryError("CIE at \(header.offset): FDE encoding \(self.fdePointerEncoding.rawValue)")
                }
            case UInt8(ascii: "P"):
                let encoding = PointerEncoding(try data.u8())
                guard encoding.isValid, !encoding.isOmitted else {
                    throw CFIEntryError("CIE at \(header.offset): personality encoding \(encoding.rawValue)")
                }
                // The personality routine isn't needed to unwind; read it only to get past it.
                _ = try data.pointer(encoding, bases: bases, function: 0, dereference: false)
            case UInt8(ascii: "L"):
                self.lsdaEncoding = PointerEncoding(try data.u8())
                guard self.lsdaEncoding.isValid else {
                    throw CFIEntryError("CIE at \(header.offset): LSDA encoding \(self.lsdaEncoding.rawValue)")
                }
            case UInt8(ascii: "S"):
                self.isSignalFrame = true
            default:
                // Unknown letters ('B' on AArch64, 'G' for MTE) carry no data we could misread: 'z' told us
                // where the data ends, so the rest of the augmentation is skipped.
                break
            }
        }
        self.instructions = cursor.position..<header.end
    }
}
