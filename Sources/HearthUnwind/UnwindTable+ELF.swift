// UnwindTable+ELF.swift: builds an UnwindTable from an ELF file: finds `.eh_frame`, `.eh_frame_hdr` and
// `.debug_frame` with HearthSymbolizer's reader, the bases pointer encodings refer to, and the file's key.

import HearthELF
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension UnwindTable {
    /// What one file's call frame information may cost to compile: a file a workload controls is hostile input.
    public struct Limits: Sendable {
        /// The largest `.eh_frame` or `.debug_frame` compiled. It is read in pieces, so this bounds the work, not
        /// the memory; a sparse file that claims more than it has allocated is refused before any read. Default
        /// 64 MiB (libxul's `.eh_frame` is ~6 MiB).
        public var maximumSectionBytes: Int = 64 << 20
        /// How much of a CFI section is read at a time. Default 256 KiB: libxul's `.eh_frame` in 24 reads.
        public var pieceBytes: Int = 256 << 10
        /// The largest single CIE or FDE accepted (a larger one is counted as malformed). Real entries are well
        /// under a kilobyte; the default, 1 MiB, bounds what one entry may add to a piece.
        public var maximumEntryBytes: Int = 1 << 20
        /// The most rows compiled; FDEs beyond are left out and counted. Default 4M rows (swift-frontend has 2.4M).
        public var maximumRows: Int = 4 << 20

        public init() {}
    }

    /// The ELF `e_machine` of x86-64.
    static let machineX86_64: UInt16 = 62

    /// Reads and compiles the call frame information of the ELF file at `path`.
    ///
    /// The table is keyed by the file's GNU build id, or else by the device and inode of `path`.
    ///
    /// - Throws: ``UnwindError`` when the file can't be read, isn't x86-64 ELF64, or has no CFI sections.
    ///   Damage inside the CFI is counted in ``statistics`` instead.
    public init(contentsOf path: String, logger: Logger? = nil) throws(UnwindError) {
        let elf: ELFFile
        do {
            elf = try ELFFile(path: path)
        } catch {
            throw UnwindError(code: .unreadable, message: "cannot read \(path)", cause: error)
        }
        let key: Key
        if let buildID = elf.buildID {
            key = .buildID(buildID)
        } else {
            var info = stat()
            guard stat(path, &info) == 0 else {
                throw UnwindError(
                    code: .unreadable,
                    message: "cannot stat \(path)",
                    cause: SystemError(function: "stat", errno: errno)
                )
            }
            key = .file(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
        }
        try self.init(elf: elf, key: key, logger: logger)
    }

    /// Compiles the call frame information of a parsed ELF file.
    ///
    /// `.eh_frame` FDEs are found through `.eh_frame_hdr` when it has a usable table, else by walking the
    /// section; `.debug_frame` FDEs are added where they cover code `.eh_frame` doesn't. FDEs must lie within
    /// the file's executable segments.
    ///
    /// - Throws: ``UnwindError`` when the file isn't x86-64 ELF64, has no CFI sections, or they can't be read.
    public init(elf: ELFFile, key: Key, limits: Limits = Limits(), logger: Logger? = nil) throws(UnwindError) {
        guard elf.is64Bit, elf.isLittleEndian, elf.machine == Self.machineX86_64 else {
            throw UnwindError(code: .unsupportedArchitecture, message: "e_machine \(elf.machine) is not x86-64 ELF64")
        }
        let ehFrame = elf.section(named: ".eh_frame").flatMap { $0.hasNoBits ? nil : $0 }
        let debugFrame = elf.section(named: ".debug_frame").flatMap { $0.hasNoBits ? nil : $0 }
        guard ehFrame != nil || debugFrame != nil else {
            throw UnwindError(code: .noCallFrameInformation, message: "no .eh_frame or .debug_frame")
        }
        let codeRanges = elf.programHeaders.filter { $0.isLoad && $0.isExecutable }.compactMap { segment in
            let (end, overflow) = segment.virtualAddress.addingReportingOverflow(segment.memorySize)
            return overflow ? nil : segment.virtualAddress..<end
        }
        for section in [ehFrame, debugFrame].compactMap({ $0 }) where section.size > UInt64(limits.maximumSectionBytes)
        {
            throw UnwindError(
                code: .tooLarge,
                message: "\(section.name) is \(section.size) bytes, above the limit of \(limits.maximumSectionBytes)"
            )
        }
        var compiler = CFICompiler(codeRanges: codeRanges, maximumRows: limits.maximumRows, logger: logger)
        var bases = PointerBases(
            section: 0,
            text: elf.section(named: ".text")?.address,
            data: elf.section(named: ".got")?.address,
            loadPointer: Self.pointerLoader(elf)
        )
        for (section, flavor) in [(ehFrame, CFISection.Flavor.ehFrame), (debugFrame, .debugFrame)] {
            guard let section else { continue }
            bases.section = section.address
            do {
                // Refuses a sparse file's claim before reading any of it, as reading it whole did.
                try elf.checkReadable(section)
            } catch {
                throw UnwindError(code: .unreadable, message: "cannot read \(section.name)", cause: error)
            }
            var reader = CFISectionReader(
                size: Int(section.size),
                flavor: flavor,
                bases: bases,
                pieceBytes: limits.pieceBytes,
                maximumEntryBytes: limits.maximumEntryBytes
            ) { range throws(ELFError) in
                try elf.data(of: section, in: UInt64(range.lowerBound)..<UInt64(range.upperBound))
            }
            compiler.add(&reader, fdeOffsets: flavor == .ehFrame ? Self.fdeOffsets(elf: elf, ehFrame: section) : nil)
            if let failure = reader.readFailure {
                throw UnwindError(code: .unreadable, message: "cannot read \(section.name)", cause: failure)
            }
        }
        let (rows, range) = compiler.finish()
        self.init(key: key, addressRange: range, rows: rows, statistics: compiler.statistics)
        logger?.debug(
            "compiled unwind table",
            metadata: [
                "unwind.key": "\(key)",
                "unwind.fdes": "\(self.statistics.fdes)",
                "unwind.rows": "\(self.statistics.rows)",
                "unwind.unsupported_rows": "\(self.statistics.unsupportedRows)",
                "unwind.malformed_fdes": "\(self.statistics.malformedFDEs)",
            ]
        )
    }

    /// The `.eh_frame` offsets of the FDEs `.eh_frame_hdr` lists, or nil when there is no usable header (then
    /// `.eh_frame` is walked). An entry pointing outside `.eh_frame` is kept as an out-of-range offset, so it
    /// is counted as malformed rather than silently dropped.
    private static func fdeOffsets(elf: ELFFile, ehFrame: ELFFile.Section) -> [Int]? {
        guard let headerSection = elf.section(named: ".eh_frame_hdr"), !headerSection.hasNoBits,
            let bytes = try? elf.data(of: headerSection),
            let header = EHFrameHeader(
                data: ELFBytes(bytes: bytes, littleEndian: true),
                address: headerSection.address
            ),
            header.ehFramePointer == ehFrame.address
        else {
            return nil
        }
        return header.fdeAddresses.map { address in
            let offset = address &- ehFrame.address
            return offset < ehFrame.size ? Int(offset) : Int.max
        }
    }

    /// Reads the 8-byte pointer at a link-time address from the file, for `DW_EH_PE_indirect`.
    private static func pointerLoader(_ elf: ELFFile) -> @Sendable (UInt64) -> UInt64? {
        { address in
            guard
                let section = elf.sections.first(where: {
                    !$0.hasNoBits && $0.address != 0 && address >= $0.address && address &- $0.address < $0.size
                        && $0.size - (address - $0.address) >= 8
                })
            else {
                return nil
            }
            let offset = address - section.address
            guard let bytes = try? elf.data(of: section, in: offset..<offset + 8) else {
                return nil
            }
            return try? ELFBytes(bytes: bytes, littleEndian: true).u64(0)
        }
    }
}
