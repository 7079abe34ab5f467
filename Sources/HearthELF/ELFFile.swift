// ELFFile.swift: the ELF parser, written for hostile input: header, program and section headers, GNU build id and
// `.gnu_debuglink`, section data read on demand, and the load bias of a mapping.

/// A parsed ELF file: header, program headers, section headers, GNU build id and `.gnu_debuglink`.
///
/// The parser is written for hostile input. Every offset, size and index read from the file is checked
/// (with overflow-reporting arithmetic) before it is used, and every problem is thrown as an ``ELFError``;
/// it never traps and never reads outside the file. Section contents (such as symbol tables) are read on
/// demand, so a parsed file holds only its headers in memory.
///
/// ```swift
/// let elf = try ELFFile(path: "/bin/ls")
/// print(elf.buildID ?? "no build id", elf.fileType == .sharedObject)
/// for symbol in try elf.functionSymbols() { print(symbol.name, symbol.value) }
/// ```
public struct ELFFile: Sendable {
    /// The ELF `e_type`, as an open set of values.
    public struct FileType: Hashable, Sendable, CustomStringConvertible {
        /// The raw `e_type` value.
        public var rawValue: UInt16
        /// Creates a file type from its raw value.
        public init(rawValue: UInt16) { self.rawValue = rawValue }
        /// `ET_REL`: a relocatable object.
        public static let relocatable = FileType(rawValue: 1)
        /// `ET_EXEC`: a position-dependent executable (non-PIE).
        public static let executable = FileType(rawValue: 2)
        /// `ET_DYN`: a shared object or a position-independent executable.
        public static let sharedObject = FileType(rawValue: 3)
        /// `ET_CORE`: a core dump.
        public static let core = FileType(rawValue: 4)

        public var description: String {
            switch self.rawValue {
            case 1: "ET_REL"
            case 2: "ET_EXEC"
            case 3: "ET_DYN"
            case 4: "ET_CORE"
            default: "ET_\(self.rawValue)"
            }
        }
    }

    /// A program header (segment).
    public struct ProgramHeader: Hashable, Sendable {
        /// `p_type`; `PT_LOAD` is 1, `PT_NOTE` is 4.
        public var type: UInt32
        /// `p_flags`; `PF_X` is 1, `PF_W` 2, `PF_R` 4.
        public var flags: UInt32
        /// `p_offset`: where the segment starts in the file.
        public var offset: UInt64
        /// `p_vaddr`: where the segment is linked to be loaded.
        public var virtualAddress: UInt64
        /// `p_filesz`.
        public var fileSize: UInt64
        /// `p_memsz`.
        public var memorySize: UInt64
        /// `p_align`.
        public var alignment: UInt64

        /// `PT_LOAD`.
        public static let typeLoad: UInt32 = 1
        /// `PT_NOTE`.
        public static let typeNote: UInt32 = 4
        /// `PF_X`.
        public static let flagExecute: UInt32 = 1

        /// Whether this is a loadable segment.
        public var isLoad: Bool { self.type == Self.typeLoad }
        /// Whether the segment is mapped executable.
        public var isExecutable: Bool { self.flags & Self.flagExecute != 0 }
    }

    /// A section header, with its name resolved from the section-name string table.
    public struct Section: Hashable, Sendable {
        /// The section's index in the section header table.
        public var index: Int
        /// The section name (empty if it could not be read).
        public var name: String
        /// `sh_type`; `SHT_SYMTAB` is 2, `SHT_STRTAB` 3, `SHT_NOTE` 7, `SHT_NOBITS` 8, `SHT_DYNSYM` 11.
        public var type: UInt32
        /// `sh_flags`.
        public var flags: UInt64
        /// `sh_addr`.
        public var address: UInt64
        /// `sh_offset`.
        public var offset: UInt64
        /// `sh_size`.
        public var size: UInt64
        /// `sh_link`.
        public var link: UInt32
        /// `sh_info`.
        public var info: UInt32
        /// `sh_entsize`.
        public var entrySize: UInt64

        package static let typeSymtab: UInt32 = 2
        package static let typeStrtab: UInt32 = 3
        package static let typeNote: UInt32 = 7
        package static let typeNobits: UInt32 = 8
        package static let typeDynsym: UInt32 = 11

        /// Whether the section occupies no bytes in the file (`SHT_NOBITS`, such as `.bss` or sections of a
        /// separate debug file).
        public var hasNoBits: Bool { self.type == Self.typeNobits }
    }

    /// The contents of a `.gnu_debuglink` section: the name of a separate debug file and its CRC-32.
    public struct DebugLink: Hashable, Sendable {
        /// The debug file's name, without directories.
        public var fileName: String
        /// The CRC-32 of the debug file's contents.
        public var crc: UInt32
    }

    /// A function symbol from `.symtab` or `.dynsym`.
    public struct Symbol: Hashable, Sendable {
        /// The raw (mangled) name.
        public var name: String
        /// `st_value`: the function's link-time address.
        public var value: UInt64
        /// `st_size` (0 when the producer didn't record it).
        public var size: UInt64
        /// `STT_FUNC` (2) or `STT_GNU_IFUNC` (10).
        public var type: UInt8
        /// `STB_LOCAL` (0), `STB_GLOBAL` (1) or `STB_WEAK` (2).
        public var binding: UInt8
        /// `st_shndx`: the index of the section the symbol is defined in.
        public var sectionIndex: UInt16
        /// Whether the symbol came from `.dynsym` (otherwise `.symtab`).
        public var isDynamic: Bool
    }

    /// Whether this is an ELF64 file (otherwise ELF32).
    public let is64Bit: Bool
    /// Whether the file is little-endian.
    public let isLittleEndian: Bool
    /// `e_type`.
    public let fileType: FileType
    /// `e_machine` (62 is x86-64, 183 is AArch64).
    public let machine: UInt16
    /// `e_entry`.
    public let entry: UInt64
    /// The program headers, in file order.
    public let programHeaders: [ProgramHeader]
    /// The section headers, in file order (empty for files whose section headers were stripped).
    public let sections: [Section]
    /// The GNU build id (`NT_GNU_BUILD_ID` note) as lowercase hex, when present.
    public let buildID: String?
    /// The `.gnu_debuglink` contents, when present.
    public let debugLink: DebugLink?

    package let source: ELFByteSource

    /// The largest number of program or section headers accepted.
    package static let maximumHeaderCount = 1 << 20

    /// Parses an ELF image held in memory.
    public init(bytes: [UInt8]) throws(ELFError) {
        try self.init(source: ELFByteSource(bytes: bytes))
    }

    /// Opens and parses the ELF file at `path`. Only headers are read now; section data is read on demand
    /// through the open descriptor, which is closed when the last copy of this value is released.
    public init(path: String) throws(ELFError) {
        try self.init(source: ELFByteSource(path: path))
    }

    /// Parses an opened workload file (see ``WorkloadFile``).
    package init(file: WorkloadFile) throws(ELFError) {
        try self.init(source: ELFByteSource(file: file))
    }

    package init(source: ELFByteSource) throws(ELFError) {
        self.source = source
        let ident = ELFBytes(
            bytes: try source.read(offset: 0, count: min(16, source.size), what: "e_ident"),
            littleEndian: true
        )
        guard ident.count == 16, ident.bytes[0] == 0x7f, ident.bytes[1] == 0x45, ident.bytes[2] == 0x4c,
            ident.bytes[3] == 0x46
        else {
            throw ELFError(code: .notELF, message: "missing ELF magic")
        }
        switch ident.bytes[4] {
        case 1: self.is64Bit = false
        case 2: self.is64Bit = true
        default: throw ELFError(code: .unsupported, message: "EI_CLASS \(ident.bytes[4])")
        }
        switch ident.bytes[5] {
        case 1: self.isLittleEndian = true
        case 2: self.isLittleEndian = false
        default: throw ELFError(code: .unsupported, message: "EI_DATA \(ident.bytes[5])")
        }
        guard ident.bytes[6] == 1 else {
            throw ELFError(code: .unsupported, message: "EI_VERSION \(ident.bytes[6])")
        }
        let is64 = self.is64Bit
        let headerSize: UInt64 = is64 ? 64 : 52
        let header = ELFBytes(
            bytes: try source.read(offset: 0, count: headerSize, what: "ELF header"),
            littleEndian: self.isLittleEndian
        )
        self.fileType = FileType(rawValue: try header.u16(16))
        self.machine = try header.u16(18)
        self.entry = try header.word(24, is64: is64)
        let phoff = try header.word(is64 ? 32 : 28, is64: is64)
        let shoff = try header.word(is64 ? 40 : 32, is64: is64)
        let phentsize = UInt64(try header.u16(is64 ? 54 : 42))
        let phnum = UInt64(try header.u16(is64 ? 56 : 44))
        let shentsize = UInt64(try header.u16(is64 ? 58 : 46))
        let shnumField = UInt64(try header.u16(is64 ? 60 : 48))
        let shstrndxField = UInt32(try header.u16(is64 ? 62 : 50))

        self.programHeaders = try Self.readProgramHeaders(
            source: source,
            offset: phoff,
            entrySize: phentsize,
            count: phnum,
            is64: is64,
            littleEndian: self.isLittleEndian
        )
        self.sections = try Self.readSections(
            source: source,
            offset: shoff,
            entrySize: shentsize,
            countField: shnumField,
            nameIndexField: shstrndxField,
            is64: is64,
            littleEndian: self.isLittleEndian
        )
        // Notes and the debug link are optional extras: a damaged note doesn't make the file unusable.
        self.buildID = Self.readBuildID(
            source: source,
            programHeaders: self.programHeaders,
            sections: self.sections,
            littleEndian: self.isLittleEndian
        )
        self.debugLink = Self.readDebugLink(
            source: source,
            sections: self.sections,
            littleEndian: self.isLittleEndian
        )
    }

    // MARK: Header tables

    private static func tableRange(
        offset: UInt64,
        entrySize: UInt64,
        count: UInt64,
        minimumEntrySize: UInt64,
        what: String
    ) throws(ELFError) -> UInt64 {
        guard entrySize >= minimumEntrySize else {
            throw ELFError(code: .malformed, message: "\(what) entry size \(entrySize) < \(minimumEntrySize)")
        }
        guard count <= UInt64(Self.maximumHeaderCount) else {
            throw ELFError(code: .tooLarge, message: "\(count) \(what) entries")
        }
        let (total, overflow) = entrySize.multipliedReportingOverflow(by: count)
        guard !overflow else {
            throw ELFError(code: .malformed, message: "\(what) table size overflows")
        }
        return total
    }

    private static func readProgramHeaders(
        source: ELFByteSource,
        offset: UInt64,
        entrySize: UInt64,
        count: UInt64,
        is64: Bool,
        littleEndian: Bool
    ) throws(ELFError) -> [ProgramHeader] {
        if count == 0 || offset == 0 {
            return []
        }
        let total = try Self.tableRange(
            offset: offset,
            entrySize: entrySize,
            count: count,
            minimumEntrySize: is64 ? 56 : 32,
            what: "program header"
        )
        let table = ELFBytes(
            bytes: try source.read(offset: offset, count: total, what: "program header table"),
            littleEndian: littleEndian
        )
        var result: [ProgramHeader] = []
        result.reserveCapacity(Int(count))
        let stride = Int(entrySize)
        for i in 0..<Int(count) {
            let base = i * stride
            if is64 {
                result.append(
                    ProgramHeader(
                        type: try table.u32(base),
                        flags: try table.u32(base + 4),
                        offset: try table.u64(base + 8),
                        virtualAddress: try table.u64(base + 16),
                        fileSize: try table.u64(base + 32),
                        memorySize: try table.u64(base + 40),
                        alignment: try table.u64(base + 48)
                    )
                )
            } else {
                result.append(
                    ProgramHeader(
                        type: try table.u32(base),
                        flags: try table.u32(base + 24),
                        offset: UInt64(try table.u32(base + 4)),
                        virtualAddress: UInt64(try table.u32(base + 8)),
                        fileSize: UInt64(try table.u32(base + 16)),
                        memorySize: UInt64(try table.u32(base + 20)),
                        alignment: UInt64(try table.u32(base + 28))
                    )
                )
            }
        }
        return result
    }

    private static func readSections(
        source: ELFByteSource,
        offset: UInt64,
        entrySize: UInt64,
        countField: UInt64,
        nameIndexField: UInt32,
        is64: Bool,
        littleEndian: Bool
    ) throws(ELFError) -> [Section] {
        if offset == 0 {
            return []
        }
        let minimumEntrySize: UInt64 = is64 ? 64 : 40
        func parse(_ table: ELFBytes, _ i: Int, stride: Int) throws(ELFError) -> Section {
            let base = i * stride
            if is64 {
                return Section(
                    index: i,
                    name: "",
                    type: try table.u32(base + 4),
                    flags: try table.u64(base + 8),
                    address: try table.u64(base + 16),
                    offset: try table.u64(base + 24),
                    size: try table.u64(base + 32),
                    link: try table.u32(base + 40),
                    info: try table.u32(base + 44),
                    entrySize: try table.u64(base + 56)
                )
            }
            return Section(
                index: i,
                name: "",
                type: try table.u32(base + 4),
                flags: UInt64(try table.u32(base + 8)),
                address: UInt64(try table.u32(base + 12)),
                offset: UInt64(try table.u32(base + 16)),
                size: UInt64(try table.u32(base + 20)),
                link: try table.u32(base + 24),
                info: try table.u32(base + 28),
                entrySize: UInt64(try table.u32(base + 36))
            )
        }

        // e_shnum == 0 and e_shstrndx == SHN_XINDEX defer to fields of section 0 (ELF gABI, "Extended
        // Section Numbering").
        var count = countField
        var nameIndex = nameIndexField
        if countField == 0 || nameIndexField == 0xffff {
            guard entrySize >= minimumEntrySize else {
                throw ELFError(code: .malformed, message: "section header entry size \(entrySize)")
            }
            let first = ELFBytes(
                bytes: try source.read(offset: offset, count: entrySize, what: "section header 0"),
                littleEndian: littleEndian
            )
            let zero = try parse(first, 0, stride: Int(entrySize))
            if countField == 0 {
                count = zero.size
            }
            if nameIndexField == 0xffff {
                nameIndex = zero.link
            }
        }
        if count == 0 {
            return []
        }
        let total = try Self.tableRange(
            offset: offset,
            entrySize: entrySize,
            count: count,
            minimumEntrySize: minimumEntrySize,
            what: "section header"
        )
        let table = ELFBytes(
            bytes: try source.read(offset: offset, count: total, what: "section header table"),
            littleEndian: littleEndian
        )
        var sections: [Section] = []
        sections.reserveCapacity(Int(count))
        let stride = Int(entrySize)
        for i in 0..<Int(count) {
            sections.append(try parse(table, i, stride: stride))
        }

        // Section names. A missing or damaged name table leaves the names empty.
        if nameIndex != 0, Int(nameIndex) < sections.count {
            let names = sections[Int(nameIndex)]
            if names.type == Section.typeStrtab,
                let bytes = try? source.read(offset: names.offset, count: names.size, what: "section name table")
            {
                let strings = ELFBytes(bytes: bytes, littleEndian: littleEndian)
                for i in sections.indices {
                    let nameOffset = try table.u32(i * stride)
                    if let name = strings.cString(at: Int(nameOffset)) {
                        sections[i].name = String(decoding: name, as: UTF8.self)
                    }
                }
            }
        }
        return sections
    }

    // MARK: Notes and debug link

    private static func readBuildID(
        source: ELFByteSource,
        programHeaders: [ProgramHeader],
        sections: [Section],
        littleEndian: Bool
    ) -> String? {
        var ranges: [(UInt64, UInt64)] = []
        for header in programHeaders where header.type == ProgramHeader.typeNote {
            ranges.append((header.offset, header.fileSize))
        }
        for section in sections where section.type == Section.typeNote {
            ranges.append((section.offset, section.size))
        }
        for (offset, size) in ranges {
            guard size <= 1 << 20,
                let bytes = try? source.read(offset: offset, count: size, what: "note")
            else {
                continue
            }
            if let id = Self.findBuildIDNote(ELFBytes(bytes: bytes, littleEndian: littleEndian)) {
                return id
            }
        }
        return nil
    }

    /// Walks a note area (`namesz`, `descsz`, `type`, name, descriptor, each padded to 4 bytes) for the
    /// `NT_GNU_BUILD_ID` note of owner "GNU".
    package static func findBuildIDNote(_ notes: ELFBytes) -> String? {
        var position = 0
        while position <= notes.count - 12 {
            guard let nameSize = try? notes.u32(position),
                let descriptorSize = try? notes.u32(position + 4),
                let type = try? notes.u32(position + 8)
            else {
                return nil
            }
            let nameStart = position + 12
            // Sizes are at most 2^32 - 1, so these additions can't overflow a 64-bit Int.
            let paddedName = (Int(nameSize) + 3) & ~3
            let descriptorStart = nameStart + paddedName
            let paddedDescriptor = (Int(descriptorSize) + 3) & ~3
            let next = descriptorStart + paddedDescriptor
            guard descriptorStart + Int(descriptorSize) <= notes.count else {
                return nil
            }
            if type == 3, nameSize == 4, notes.bytes[nameStart..<nameStart + 4] == [0x47, 0x4e, 0x55, 0],
                descriptorSize > 0, descriptorSize <= 64
            {
                return hexString(notes.bytes[descriptorStart..<descriptorStart + Int(descriptorSize)])
            }
            guard next > position else {
                return nil
            }
            position = next
        }
        return nil
    }

    private static func readDebugLink(source: ELFByteSource, sections: [Section], littleEndian: Bool) -> DebugLink? {
        guard let section = sections.first(where: { $0.name == ".gnu_debuglink" && !$0.hasNoBits }),
            section.size <= 4096,
            let bytes = try? source.read(offset: section.offset, count: section.size, what: ".gnu_debuglink")
        else {
            return nil
        }
        let data = ELFBytes(bytes: bytes, littleEndian: littleEndian)
        guard let name = data.cString(at: 0), !name.isEmpty else {
            return nil
        }
        let crcOffset = (name.count + 1 + 3) & ~3
        guard let crc = try? data.u32(crcOffset) else {
            return nil
        }
        let fileName = String(decoding: name, as: UTF8.self)
        // A link naming a path could escape the directories we look in.
        guard !fileName.contains("/"), fileName != ".", fileName != ".." else {
            return nil
        }
        return DebugLink(fileName: fileName, crc: crc)
    }
}
