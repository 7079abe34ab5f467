// ELFFile+Queries.swift: what callers ask of a parsed ELF file: sections by name and their bytes, load bias, the
// identity caches share tables by.

extension ELFFile {
    /// The first section called `name`.
    public func section(named name: String) -> Section? {
        self.sections.first { $0.name == name }
    }

    /// Reads a section's bytes from the file. `SHT_NOBITS` sections have no bytes and return an empty array.
    public func data(of section: Section) throws(ELFError) -> [UInt8] {
        if section.hasNoBits {
            return []
        }
        return try self.source.read(offset: section.offset, count: section.size, what: "section \(section.name)")
    }

    /// The bytes at `range` of `section`'s contents (offsets within the section), for a section read in pieces.
    ///
    /// - Throws: ``ELFError`` when the range lies outside the section or the file, or the read fails.
    public func data(of section: Section, in range: Range<UInt64>) throws(ELFError) -> [UInt8] {
        guard !section.hasNoBits, range.upperBound <= section.size else {
            throw ELFError(
                code: .truncated,
                message: "bytes \(range) of section \(section.name) lie outside its \(section.size) bytes"
            )
        }
        return try self.source.read(
            offset: section.offset + range.lowerBound,
            count: UInt64(range.count),
            what: "section \(section.name)"
        )
    }

    /// Throws what ``data(of:)`` would for the whole section (outside the file, too large, or a sparse file's claim
    /// of more than it allocated) without reading it: a section read in pieces is checked whole first.
    public func checkReadable(_ section: Section) throws(ELFError) {
        if !section.hasNoBits {
            try self.source.checkReadable(offset: section.offset, count: section.size, what: "section \(section.name)")
        }
    }

    /// Whether the file has a `.symtab` section (that is, it was not stripped).
    public var hasSymbolTable: Bool {
        self.sections.contains { $0.type == Section.typeSymtab && !$0.hasNoBits && $0.size > 0 }
    }

    /// The load bias of a mapping of this file: what to subtract from a runtime address in the mapping to get
    /// the link-time (`st_value`) address.
    ///
    /// The mapping's file offset identifies the `PT_LOAD` segment it maps (the kernel maps segments at page
    /// granularity, so the offset is `p_offset` rounded down to a page). For that segment, the runtime
    /// address of file offset `fileOffset` is `start`, and its link-time address is
    /// `p_vaddr + fileOffset - p_offset`, so `bias = start - fileOffset - (p_vaddr - p_offset)`, in
    /// wrapping arithmetic. For non-PIE executables this is 0; for PIE and shared objects, the load address.
    ///
    /// When several segments share the mapping's first file page (linkers pack a read-only segment and the
    /// code segment into one page), a segment whose `PF_X` matches `executable` is preferred, so the bias of
    /// executable mappings, the ones stack addresses fall in, is exact. If no segment matches, the bias
    /// assumes link-time addresses equal file offsets.
    ///
    /// - Parameters:
    ///   - start: The mapping's start address, from `/proc/PID/maps`.
    ///   - fileOffset: The mapping's file offset, from `/proc/PID/maps`.
    ///   - executable: Whether the mapping is executable (`r-xp`).
    public func loadBias(mappingStart start: UInt64, fileOffset: UInt64, executable: Bool = true) -> UInt64 {
        Self.loadBias(
            segments: self.programHeaders,
            mappingStart: start,
            fileOffset: fileOffset,
            executable: executable
        )
    }

    package static func loadBias(
        segments: [ProgramHeader],
        mappingStart start: UInt64,
        fileOffset: UInt64,
        executable: Bool = true
    ) -> UInt64 {
        let pageMask: UInt64 = ~0xfff
        var best: ProgramHeader?
        var bestScore = -1
        for header in segments where header.isLoad {
            let segmentStart = header.offset & pageMask
            let (segmentEnd, overflow) = header.offset.addingReportingOverflow(header.fileSize)
            let startsHere = segmentStart == fileOffset
            let contains = fileOffset >= segmentStart && (overflow || fileOffset < segmentEnd)
            guard startsHere || contains else {
                continue
            }
            let score = (header.isExecutable == executable ? 2 : 0) + (startsHere ? 1 : 0)
            if score > bestScore {
                best = header
                bestScore = score
            }
        }
        guard let segment = best else {
            return start &- fileOffset
        }
        return start &- fileOffset &- (segment.virtualAddress &- segment.offset)
    }
}

/// Lowercase hex of `bytes`.
package func hexString(_ bytes: some Sequence<UInt8>) -> String {
    let digits: [UInt8] = Array("0123456789abcdef".utf8)
    var result: [UInt8] = []
    for byte in bytes {
        result.append(digits[Int(byte >> 4)])
        result.append(digits[Int(byte & 0xf)])
    }
    return String(decoding: result, as: UTF8.self)
}

extension ELFFile {
    /// The file's size in bytes.
    package var fileSize: UInt64 { self.source.size }

    /// What caches shared between processes key this file by, so that only files that are really the same share a
    /// table: the build id together with the file's size and a digest of its segment and section layout. A build
    /// id alone is a claim the file makes about itself, which any workload can copy (a library carrying libc's
    /// build id must never rename another pod's libc frames). Nil without a build id.
    package var sharingIdentity: String? {
        guard let buildID = self.buildID else { return nil }
        return "\(buildID)/\(self.fileSize)/\(String(self.layoutDigest, radix: 16))"
    }

    /// FNV-1a over every program header's and section header's type, flags, offset, address and sizes.
    package var layoutDigest: UInt64 {
        var digest: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ value: UInt64) {
            for shift in stride(from: 0, to: 64, by: 8) {
                digest = (digest ^ (value >> UInt64(shift) & 0xff)) &* 0x100_0000_01b3
            }
        }
        for header in self.programHeaders {
            for value in [UInt64(header.type), UInt64(header.flags), header.offset, header.virtualAddress] {
                mix(value)
            }
            mix(header.fileSize)
            mix(header.memorySize)
        }
        for section in self.sections {
            for value in [UInt64(section.type), section.flags, section.address, section.offset, section.size] {
                mix(value)
            }
        }
        return digest
    }
}
