// ELFFile+Symbols.swift: function symbols read from `.symtab` and `.dynsym`, which SymbolTable.swift turns into the
// compact sorted table used for address lookup.

/// One function symbol as read from a symbol table, with its name still as bytes of the string table.
package struct RawFunctionSymbol {
    package var value: UInt64
    package var size: UInt64
    package var type: UInt8
    package var binding: UInt8
    package var sectionIndex: UInt16
    package var isDynamic: Bool
    package var name: ArraySlice<UInt8>
    /// The end address of the section the symbol is defined in, when known; bounds zero-size symbols.
    package var sectionEnd: UInt64?

    package init(
        value: UInt64,
        size: UInt64,
        type: UInt8,
        binding: UInt8,
        sectionIndex: UInt16,
        isDynamic: Bool,
        name: ArraySlice<UInt8>,
        sectionEnd: UInt64? = nil
    ) {
        self.value = value
        self.size = size
        self.type = type
        self.binding = binding
        self.sectionIndex = sectionIndex
        self.isDynamic = isDynamic
        self.name = name
        self.sectionEnd = sectionEnd
    }
}

extension ELFFile {
    /// Which symbol tables to read.
    package struct SymbolTableKinds: OptionSet {
        package let rawValue: UInt8
        package init(rawValue: UInt8) { self.rawValue = rawValue }
        package static let symtab = SymbolTableKinds(rawValue: 1)
        package static let dynsym = SymbolTableKinds(rawValue: 2)
        package static let all: SymbolTableKinds = [.symtab, .dynsym]
    }

    /// All defined function symbols from `.symtab` and `.dynsym`, in table order.
    ///
    /// Only `STT_FUNC` and `STT_GNU_IFUNC` symbols that are defined in a regular section, have a nonzero
    /// value and a non-empty name are returned; data, section, file and undefined symbols are skipped.
    ///
    /// - Throws: ``ELFError`` when a symbol table or its string table is malformed.
    public func functionSymbols() throws(ELFError) -> [Symbol] {
        var result: [Symbol] = []
        try self.forEachFunctionSymbol(in: .all) { raw in
            result.append(
                Symbol(
                    name: String(decoding: raw.name, as: UTF8.self),
                    value: raw.value,
                    size: raw.size,
                    type: raw.type,
                    binding: raw.binding,
                    sectionIndex: raw.sectionIndex,
                    isDynamic: raw.isDynamic
                )
            )
        }
        return result
    }

    /// Calls `body` for each defined function symbol of the selected tables.
    package func forEachFunctionSymbol(
        in kinds: SymbolTableKinds,
        _ body: (RawFunctionSymbol) -> Void
    ) throws(ELFError) {
        let is64 = self.is64Bit
        let minimumEntrySize: UInt64 = is64 ? 24 : 16
        for section in self.sections {
            let isDynamic: Bool
            switch section.type {
            case Section.typeSymtab where kinds.contains(.symtab): isDynamic = false
            case Section.typeDynsym where kinds.contains(.dynsym): isDynamic = true
            default: continue
            }
            if section.hasNoBits || section.size == 0 {
                continue
            }
            guard section.entrySize >= minimumEntrySize else {
                throw ELFError(
                    code: .malformed,
                    message: "symbol table \(section.name) entry size \(section.entrySize)"
                )
            }
            guard Int(exactly: section.link).map({ $0 < self.sections.count }) ?? false else {
                throw ELFError(code: .malformed, message: "symbol table \(section.name) sh_link \(section.link)")
            }
            let stringSection = self.sections[Int(section.link)]
            guard stringSection.type == Section.typeStrtab, !stringSection.hasNoBits else {
                throw ELFError(
                    code: .malformed,
                    message: "symbol table \(section.name) links to non-string section \(section.link)"
                )
            }
            let table = ELFBytes(bytes: try self.data(of: section), littleEndian: self.isLittleEndian)
            let strings = ELFBytes(bytes: try self.data(of: stringSection), littleEndian: self.isLittleEndian)
            // The table was read (≤ 512 MiB) and the stride is at most its size, so every offset fits an Int.
            guard let stride = Int(exactly: section.entrySize), stride <= table.count else {
                continue
            }
            let count = table.count / stride
            if count < 2 {
                continue
            }
            for i in 1..<count {
                let base = i * stride
                let entry = try ELFSymbolEntry(in: table, at: base, is64: is64)
                guard entry.isDefinedFunction else {
                    continue
                }
                let (nameOffset, info, sectionIndex, value, size, type) =
                    (entry.nameOffset, entry.info, entry.sectionIndex, entry.value, entry.size, entry.type)
                guard let name = strings.cString(at: Int(nameOffset)), !name.isEmpty else {
                    continue
                }
                let sectionEnd = self.sectionEnd(ofIndex: sectionIndex)
                body(
                    RawFunctionSymbol(
                        value: value,
                        size: size,
                        type: type,
                        binding: info >> 4,
                        sectionIndex: sectionIndex,
                        isDynamic: isDynamic,
                        name: name,
                        sectionEnd: sectionEnd
                    )
                )
            }
        }
    }
}

/// One `Elf32_Sym` / `Elf64_Sym` entry, read with bounds checks.
package struct ELFSymbolEntry {
    package let nameOffset: UInt32
    package let info: UInt8
    package let sectionIndex: UInt16
    package let value: UInt64
    package let size: UInt64

    package init(in table: ELFBytes, at base: Int, is64: Bool) throws(ELFError) {
        if is64 {
            self.nameOffset = try table.u32(base)
            self.info = try table.u8(base + 4)
            self.sectionIndex = try table.u16(base + 6)
            self.value = try table.u64(base + 8)
            self.size = try table.u64(base + 16)
        } else {
            self.nameOffset = try table.u32(base)
            self.value = UInt64(try table.u32(base + 4))
            self.size = UInt64(try table.u32(base + 8))
            self.info = try table.u8(base + 12)
            self.sectionIndex = try table.u16(base + 14)
        }
    }

    package var type: UInt8 { self.info & 0xf }

    /// A function (STT_FUNC = 2, STT_GNU_IFUNC = 10) defined in a real section: not SHN_UNDEF (0) nor a reserved
    /// index (0xff00 and above: SHN_ABS, SHN_COMMON, SHN_XINDEX), at a nonzero address.
    package var isDefinedFunction: Bool {
        (self.type == 2 || self.type == 10) && self.sectionIndex != 0 && self.sectionIndex < 0xff00 && self.value != 0
    }
}

extension ELFFile {
    /// The end address of section `index`, when it exists, has a size and does not overflow.
    package func sectionEnd(ofIndex index: UInt16) -> UInt64? {
        guard Int(index) < self.sections.count else { return nil }
        let home = self.sections[Int(index)]
        let (end, overflow) = home.address.addingReportingOverflow(home.size)
        return !overflow && home.size > 0 ? end : nil
    }
}
