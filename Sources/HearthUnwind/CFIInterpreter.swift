// CFIInterpreter.swift: runs DW_CFA instructions (a CIE's initial ones, then an FDE's) and reports the rule row in
// effect at each location. Every operand is read through a bounded cursor; an unknown opcode or a bad operand
// stops the FDE at the location reached, never the whole section.

/// Executes the CFA instructions of one FDE.
struct CFIInterpreter {
    /// The deepest `DW_CFA_remember_state` nesting accepted; compilers nest one or two levels.
    static let maximumRememberedStates = 64

    let cie: CommonInformationEntry
    /// The section's pointer bases (for `DW_CFA_set_loc`); the interpreter keeps no section bytes, so a cached
    /// interpreter never holds a piece of the section alive.
    let bases: PointerBases

    /// The rules after the CIE's initial instructions, which `DW_CFA_restore` returns to.
    private(set) var initial = CFIState()
    /// The rules at ``location``.
    private(set) var state = CFIState()
    /// The address the instructions have advanced to.
    private(set) var location: UInt64 = 0
    private var remembered: [CFIState] = []

    /// Prepares to run FDEs of `cie`: runs its initial instructions, read from `section` (a view holding the CIE).
    init(cie: CommonInformationEntry, section: CFISection) throws(CFIEntryError) {
        self.cie = cie
        self.bases = section.bases
        try self.execute(cie.instructions, in: section, end: .max) { _, _ in }
        self.initial = self.state
    }

    /// Runs `fde`'s instructions, read from `section` (a view holding the FDE), calling `row` with each location and the rules in effect from there on (a
    /// location may be reported more than once, the last report wins). On a thrown error the rows reported for
    /// addresses below ``location`` stay valid, and ``location`` is where the FDE stopped making sense.
    mutating func run(
        _ fde: FrameDescriptionEntry,
        in section: CFISection,
        row: (UInt64, CFIState) -> Void
    ) throws(CFIEntryError) {
        self.state = self.initial
        self.remembered.removeAll(keepingCapacity: true)
        self.location = fde.start
        try self.execute(fde.instructions, in: section, end: fde.end, function: fde.start, row: row)
        if self.location < fde.end {
            row(self.location, self.state)
        }
    }

    private func factored(_ value: UInt64, by factor: Int64) throws(CFIEntryError) -> Int64 {
        guard let signed = Int64(exactly: value) else {
            throw CFIEntryError("operand \(value) too large")
        }
        return try self.factored(signed, by: factor)
    }

    private func factored(_ value: Int64, by factor: Int64) throws(CFIEntryError) -> Int64 {
        let (product, overflow) = value.multipliedReportingOverflow(by: factor)
        guard !overflow else {
            throw CFIEntryError("operand \(value) × \(factor) overflows")
        }
        return product
    }

    /// Whether `register` is the return-address column. The x86-64 psABI fixes it at 16; a CIE naming another
    /// column leaves the return address unspecified, which compiles to "unsupported".
    private func isReturnAddress(_ register: UInt64) -> Bool {
        register == X86Register.returnAddress && self.cie.returnAddressRegister == X86Register.returnAddress
    }

    private mutating func set(_ register: UInt64, _ rule: RegisterRule) {
        if self.isReturnAddress(register) {
            self.state.returnAddress = rule
        } else if register == X86Register.rbp {
            self.state.rbp = rule
        }
    }

    private mutating func restore(_ register: UInt64) {
        if self.isReturnAddress(register) {
            self.state.returnAddress = self.initial.returnAddress
        } else if register == X86Register.rbp {
            self.state.rbp = self.initial.rbp
        }
    }

    /// Moves to `target`, first reporting the row for the current location. Returns false once `target` is
    /// at or past the FDE's end, where no further row can apply.
    private mutating func advance(
        to target: UInt64,
        end: UInt64,
        row: (UInt64, CFIState) -> Void
    ) throws(CFIEntryError) -> Bool {
        guard target >= self.location else {
            throw CFIEntryError("location moves back from 0x\(String(self.location, radix: 16))")
        }
        row(self.location, self.state)
        self.location = target
        return target < end
    }

    private mutating func advance(
        by delta: UInt64,
        end: UInt64,
        row: (UInt64, CFIState) -> Void
    ) throws(CFIEntryError) -> Bool {
        let (scaled, overflow) = delta.multipliedReportingOverflow(by: self.cie.codeAlignment)
        let (target, overflow2) = self.location.addingReportingOverflow(scaled)
        guard !overflow, !overflow2 else {
            throw CFIEntryError("advance by \(delta) overflows")
        }
        return try self.advance(to: target, end: end, row: row)
    }

    // One switch over the DW_CFA opcodes; splitting it would only scatter the table.
    private mutating func execute(
        _ range: Range<Int>,
        in section: CFISection,
        end: UInt64,
        function: UInt64? = nil,
        row: (UInt64, CFIState) -> Void
    ) throws(CFIEntryError) {
        var cursor = section.cursor(from: range.lowerBound, to: range.upperBound)
        let dataAlignment = self.cie.dataAlignment
        while !cursor.isAtEnd {
            let opcode = try cursor.u8()
            let operand = UInt64(opcode & 0x3f)
            switch opcode >> 6 {
            case 1:  // DW_CFA_advance_loc
                guard try self.advance(by: operand, end: end, row: row) else { return }
                continue
            case 2:  // DW_CFA_offset
                self.set(operand, .offset(try self.factored(try cursor.uleb128(), by: dataAlignment)))
                continue
            case 3:  // DW_CFA_restore
                self.restore(operand)
                continue
            default:
                break
            }
            switch opcode {
            case 0x00:  // DW_CFA_nop
                break
            case 0x01:  // DW_CFA_set_loc
                var bases = self.bases
                bases.addressSize = self.cie.addressSize
                let target = try cursor.pointer(self.cie.fdePointerEncoding, bases: bases, function: function)
                guard try self.advance(to: target, end: end, row: row) else { return }
            case 0x02:  // DW_CFA_advance_loc1
                guard try self.advance(by: UInt64(try cursor.u8()), end: end, row: row) else { return }
            case 0x03:  // DW_CFA_advance_loc2
                guard try self.advance(by: UInt64(try cursor.u16()), end: end, row: row) else { return }
            case 0x04:  // DW_CFA_advance_loc4
                guard try self.advance(by: UInt64(try cursor.u32()), end: end, row: row) else { return }
            case 0x05:  // DW_CFA_offset_extended
                let register = try cursor.uleb128()
                self.set(register, .offset(try self.factored(try cursor.uleb128(), by: dataAlignment)))
            case 0x06:  // DW_CFA_restore_extended
                self.restore(try cursor.uleb128())
            case 0x07:  // DW_CFA_undefined
                self.set(try cursor.uleb128(), .undefined)
            case 0x08:  // DW_CFA_same_value
                self.set(try cursor.uleb128(), .sameValue)
            case 0x09:  // DW_CFA_register
                let register = try cursor.uleb128()
                self.set(register, .register(try cursor.uleb128()))
            case 0x0a:  // DW_CFA_remember_state
                guard self.remembered.count < Self.maximumRememberedStates else {
                    throw CFIEntryError("more than \(Self.maximumRememberedStates) nested DW_CFA_remember_state")
                }
                self.remembered.append(self.state)
            case 0x0b:  // DW_CFA_restore_state
                guard let saved = self.remembered.popLast() else {
                    throw CFIEntryError("DW_CFA_restore_state without DW_CFA_remember_state")
                }
                self.state = saved
            case 0x0c:  // DW_CFA_def_cfa
                let register = try cursor.uleb128()
                let offset = try cursor.uleb128()
                guard let signed = Int64(exactly: offset) else { throw CFIEntryError("CFA offset \(offset)") }
                self.state.cfa = .register(register, offset: signed)
            case 0x0d:  // DW_CFA_def_cfa_register
                let register = try cursor.uleb128()
                if case .register(_, let offset) = self.state.cfa {
                    self.state.cfa = .register(register, offset: offset)
                } else {
                    self.state.cfa = .register(register, offset: 0)
                }
            case 0x0e:  // DW_CFA_def_cfa_offset
                let offset = try cursor.uleb128()
                guard let signed = Int64(exactly: offset) else { throw CFIEntryError("CFA offset \(offset)") }
                try self.setCFAOffset(signed)
            case 0x0f:  // DW_CFA_def_cfa_expression
                let expression = try cursor.bytes(try cursor.uleb128())
                if let threshold = PLTExpression.threshold(of: expression) {
                    self.state.cfa = .plt(threshold: threshold)
                } else {
                    self.state.cfa = .expression
                }
            case 0x10:  // DW_CFA_expression
                let register = try cursor.uleb128()
                try cursor.skip(try cursor.uleb128())
                self.set(register, .expression)
            case 0x11:  // DW_CFA_offset_extended_sf
                let register = try cursor.uleb128()
                self.set(register, .offset(try self.factored(try cursor.sleb128(), by: dataAlignment)))
            case 0x12:  // DW_CFA_def_cfa_sf
                let register = try cursor.uleb128()
                self.state.cfa = .register(register, offset: try self.factored(try cursor.sleb128(), by: dataAlignment))
            case 0x13:  // DW_CFA_def_cfa_offset_sf
                try self.setCFAOffset(try self.factored(try cursor.sleb128(), by: dataAlignment))
            case 0x14:  // DW_CFA_val_offset
                let register = try cursor.uleb128()
                self.set(register, .valueOffset(try self.factored(try cursor.uleb128(), by: dataAlignment)))
            case 0x15:  // DW_CFA_val_offset_sf
                let register = try cursor.uleb128()
                self.set(register, .valueOffset(try self.factored(try cursor.sleb128(), by: dataAlignment)))
            case 0x16:  // DW_CFA_val_expression
                let register = try cursor.uleb128()
                try cursor.skip(try cursor.uleb128())
                self.set(register, .valueExpression)
            case 0x2e:  // DW_CFA_GNU_args_size: how much the caller pushed; unwinding doesn't need it
                _ = try cursor.uleb128()
            case 0x2f:  // DW_CFA_GNU_negative_offset_extended
                let register = try cursor.uleb128()
                let offset = try self.factored(try cursor.uleb128(), by: dataAlignment)
                self.set(register, .offset(0 &- offset))
            default:
                throw CFIEntryError("unknown DW_CFA opcode 0x\(String(opcode, radix: 16))")
            }
        }
    }

    /// `DW_CFA_def_cfa_offset*` keeps the CFA register; after an expression there is no register to keep.
    private mutating func setCFAOffset(_ offset: Int64) throws(CFIEntryError) {
        guard case .register(let register, _) = self.state.cfa else {
            throw CFIEntryError("DW_CFA_def_cfa_offset without a CFA register")
        }
        self.state.cfa = .register(register, offset: offset)
    }
}
