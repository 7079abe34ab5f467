// FrameDescriptionEntry.swift: an FDE, the call frame information of one address range: where it starts and ends
// (decoded with its CIE's pointer encoding) and where its instructions are.

/// A parsed FDE.
struct FrameDescriptionEntry: Sendable {
    /// Where the FDE starts in its section.
    var offset: Int
    /// The first address it describes (a link-time virtual address).
    var start: UInt64
    /// One past the last address it describes.
    var end: UInt64
    /// The section range of its instructions.
    var instructions: Range<Int>

    /// Parses the FDE whose header was read by ``CFISection/entryHeader(at:)``, using its (already parsed) CIE.
    init(
        header: CFISection.EntryHeader,
        cie: CommonInformationEntry,
        in section: CFISection
    ) throws(CFIEntryError) {
        precondition(!header.isCIE)
        var cursor = section.cursor(from: header.bodyStart, to: header.end)
        var bases = section.bases
        bases.addressSize = cie.addressSize
        self.offset = header.offset
        try cursor.skip(UInt64(cie.segmentSelectorSize))
        self.start = try cursor.pointer(cie.fdePointerEncoding, bases: bases)
        let length = try cursor.encodedValue(format: cie.fdePointerEncoding.format, addressSize: cie.addressSize)
        let (end, overflow) = self.start.addingReportingOverflow(length)
        guard !overflow else {
            throw CFIEntryError("FDE at \(header.offset): range 0x\(String(self.start, radix: 16))+\(length) overflows")
        }
        self.end = end
        if cie.hasAugmentationData {
            // Only the LSDA pointer lives here, and unwinding doesn't need it.
            try cursor.skip(try cursor.uleb128())
        }
        self.instructions = cursor.position..<header.end
    }
}
