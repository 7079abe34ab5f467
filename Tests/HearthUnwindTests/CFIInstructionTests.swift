// CFIInstructionTests.swift: hand-made CFI for each DW_CFA opcode family, checked row by row: prologues and
// epilogues, remember/restore_state, the PLT expression, signal frames, the root frame, unsupported rules and
// unknown opcodes.

import Testing

@testable import HearthUnwind

/// Compiles one FDE at 0x1000 of `length` bytes with the standard CIE plus `cieExtra`.
private func compileOne(
    _ instructions: [UInt8],
    length: UInt64 = 0x40,
    augmentation: String = "zR",
    cieInstructions: [UInt8] = CFIBuilder.standardInitialInstructions,
    codeAlignment: UInt64 = 1
) -> UnwindTable {
    var builder = CFIBuilder()
    let cie = builder.cie(augmentation: augmentation, codeAlignment: codeAlignment, instructions: cieInstructions)
    builder.fde(cie: cie, start: 0x1000, length: length, instructions: instructions)
    builder.terminator()
    return builder.compile()
}

private func rule(_ table: UnwindTable, _ address: UInt64) -> UnwindRule? {
    table.row(for: address)?.rule
}

@Suite("CFA instructions")
struct CFIInstructionTests {
    @Test("a push-rbp prologue, a frame-pointer body and an epilogue")
    func framePointerFunction() {
        let table = compileOne(
            CFA.advance(1) + CFA.defCFAOffset(16) + CFA.offset(6, 2) + CFA.advance(3) + CFA.defCFARegister(6)
                + CFA.advance(10) + CFA.defCFA(7, 8) + CFA.restore(6)
        )
        #expect(table.rows.map(\.address) == [0x1000, 0x1001, 0x1004, 0x100e, 0x1040])
        #expect(rule(table, 0x1000) == .cfaRSP(8))
        #expect(rule(table, 0x1001) == .cfaRSP(16, rbp: .saved(atCFAOffset: -16)))
        #expect(rule(table, 0x1003) == .cfaRSP(16, rbp: .saved(atCFAOffset: -16)))
        #expect(rule(table, 0x1004) == .cfaRBP(16, rbp: .saved(atCFAOffset: -16)))
        #expect(rule(table, 0x100e) == .cfaRSP(8))
        #expect(rule(table, 0x103f) == .cfaRSP(8))
        #expect(rule(table, 0x1040) == .noInfo)
        #expect(rule(table, 0xfff) == nil)
        #expect(table.statistics.fdes == 1)
        #expect(table.statistics.cfiRows == 4)
        #expect(table.statistics.malformedFDEs == 0)
        #expect(table.addressRange == 0x1000..<0x1040)
    }

    @Test("advance_loc1/2/4 and the code alignment factor")
    func advances() {
        let table = compileOne(
            [0x02, 0x10] + CFA.defCFAOffset(16) + [0x03, 0x00, 0x01] + CFA.defCFAOffset(24) + [0x04, 0, 0, 1, 0]
                + CFA.defCFAOffset(32) + CFA.advance(3) + CFA.defCFAOffset(40),
            length: 0x30000,
            codeAlignment: 2
        )
        #expect(table.rows.map(\.address) == [0x1000, 0x1020, 0x1220, 0x21220, 0x21226, 0x31000])
        #expect(rule(table, 0x1020) == .cfaRSP(16))
        #expect(rule(table, 0x1220) == .cfaRSP(24))
        #expect(rule(table, 0x21220) == .cfaRSP(32))
        #expect(rule(table, 0x21226) == .cfaRSP(40))
    }

    @Test("remember_state / restore_state bring back the CFA and RBP rules of an early return")
    func rememberRestore() {
        let table = compileOne(
            CFA.advance(1) + CFA.defCFAOffset(16) + CFA.offset(6, 2)  // push %rbp
                + CFA.advance(4) + CFA.rememberState + CFA.defCFAOffset(8) + CFA.restore(6)  // pop %rbp; ret
                + CFA.advance(1) + CFA.restoreState  // the code after the early return
                + CFA.advance(5) + CFA.defCFAOffset(8) + CFA.restore(6)
        )
        #expect(rule(table, 0x1001) == .cfaRSP(16, rbp: .saved(atCFAOffset: -16)))
        #expect(rule(table, 0x1005) == .cfaRSP(8))
        #expect(rule(table, 0x1006) == .cfaRSP(16, rbp: .saved(atCFAOffset: -16)))
        #expect(rule(table, 0x100b) == .cfaRSP(8))
        #expect(table.statistics.malformedFDEs == 0)
    }

    @Test("restore_state without remember_state ends the FDE there and is counted")
    func unbalancedRestore() {
        let table = compileOne(CFA.advance(2) + CFA.defCFAOffset(16) + CFA.advance(2) + CFA.restoreState)
        #expect(rule(table, 0x1000) == .cfaRSP(8))
        #expect(rule(table, 0x1002) == .cfaRSP(16))
        #expect(rule(table, 0x1004) == .noInfo)
        #expect(table.statistics.malformedFDEs == 1)
    }

    @Test("the signed and extended forms: def_cfa_sf, def_cfa_offset_sf, offset_extended(_sf), restore_extended")
    func extendedForms() {
        let table = compileOne(
            [0x12, 0x07] + CFIBuilder.sleb(-3)  // def_cfa_sf rsp, -3 × -8 = 24
                + [0x05, 0x06] + CFIBuilder.uleb(3)  // offset_extended rbp at cfa-24
                + CFA.advance(1) + [0x13] + CFIBuilder.sleb(-4)  // def_cfa_offset_sf 32
                + [0x11, 0x06] + CFIBuilder.sleb(2)  // offset_extended_sf rbp at cfa-16
                + CFA.advance(1) + [0x06, 0x06]  // restore_extended rbp
                + CFA.advance(1) + [0x2f, 0x06] + CFIBuilder.uleb(4)  // GNU_negative_offset_extended: cfa+32
                + CFA.advance(1) + [0x2e, 0x10] + CFA.nop  // GNU_args_size: ignored
        )
        #expect(rule(table, 0x1000) == .cfaRSP(24, rbp: .saved(atCFAOffset: -24)))
        #expect(rule(table, 0x1001) == .cfaRSP(32, rbp: .saved(atCFAOffset: -16)))
        #expect(rule(table, 0x1002) == .cfaRSP(32))
        #expect(rule(table, 0x1003) == .cfaRSP(32, rbp: .saved(atCFAOffset: 32)))
        #expect(rule(table, 0x1004) == .cfaRSP(32, rbp: .saved(atCFAOffset: 32)))
        #expect(table.statistics.malformedFDEs == 0)
    }

    @Test("same_value and undefined for RBP")
    func rbpSameValueAndUndefined() {
        let table = compileOne(
            CFA.offset(6, 2) + CFA.advance(1) + [0x08, 0x06] + CFA.advance(1) + [0x07, 0x06]
        )
        #expect(rule(table, 0x1000) == .cfaRSP(8, rbp: .saved(atCFAOffset: -16)))
        #expect(rule(table, 0x1001) == .cfaRSP(8))
        #expect(rule(table, 0x1002) == .cfaRSP(8, rbp: .undefined))
    }

    @Test("an undefined return address is the root frame: stop")
    func rootFrame() {
        let table = compileOne([0x07, 0x10] + CFA.advance(4) + CFA.defCFAOffset(16))
        #expect(rule(table, 0x1000) == .stop)
        #expect(rule(table, 0x1004) == .stop)
        #expect(table.rows.count == 2)
    }

    @Test("the .plt CFA expression, with DW_OP_lit11 and DW_OP_lit10", arguments: [UInt8(11), 10])
    func pltExpression(threshold: UInt8) {
        let table = compileOne(
            CFA.defCFAOffset(16) + CFA.advance(6) + CFA.defCFAOffset(24) + CFA.advance(10)
                + CFA.pltExpression(threshold: threshold)
        )
        #expect(rule(table, 0x1000) == .cfaRSP(16))
        #expect(rule(table, 0x1006) == .cfaRSP(24))
        #expect(rule(table, 0x1010) == .plt(threshold: Int16(threshold)))
        #expect(rule(table, 0x103f) == .plt(threshold: Int16(threshold)))
        #expect(table.statistics.unsupportedRows == 0)
    }

    @Test("a CIE with the 'S' augmentation makes signal-frame rows")
    func signalFrame() {
        // glibc's __restore_rt: CFA from a dereferenced expression, registers by expressions.
        let expression: [UInt8] = [0x0f, 0x04, 0x77, 0xa0, 0x01, 0x06] + [0x10, 0x06, 0x02, 0x77, 0x78]
        let table = compileOne(expression, augmentation: "zRS", cieInstructions: [])
        #expect(rule(table, 0x1000) == .signalFrame)
        #expect(rule(table, 0x1040) == .noInfo)
        #expect(table.statistics.unsupportedRows == 0)
    }

    @Test(
        "rules the BPF side can't express become counted unsupported rows",
        arguments: [
            ([0x0c, 0x0a, 0x08], UnsupportedReason.cfaRegister),  // def_cfa r10+8
            ([0x0f, 0x02, 0x77, 0x08], .cfaExpression),  // def_cfa_expression breg7 8 (not the PLT one)
            ([0x0e, 0x80, 0x80, 0x02], .cfaOffsetRange),  // def_cfa_offset 32768
            ([0x09, 0x06, 0x0c], .rbpRule),  // register rbp in r12
            ([0x10, 0x06, 0x02, 0x77, 0x00], .rbpRule),  // expression rbp
            ([0x14, 0x06, 0x02], .rbpRule),  // val_offset rbp
            ([0x16, 0x06, 0x01, 0x9c], .rbpRule),  // val_expression rbp
            ([0x86, 0x81, 0x01], .rbpOffsetRange),  // offset rbp at cfa-1032
            ([0x90, 0x02], .returnAddress),  // return address at cfa-16
            ([0x09, 0x10, 0x00], .returnAddress),  // return address in rax
        ] as [([UInt8], UnsupportedReason)]
    )
    func unsupported(instructions: [UInt8], reason: UnsupportedReason) {
        let table = compileOne(CFA.advance(4) + instructions)
        #expect(rule(table, 0x1000) == .cfaRSP(8))
        #expect(rule(table, 0x1004) == .unsupported)
        #expect(table.statistics.unsupportedRows == 1)
        #expect(table.statistics.unsupported == [reason: 1])
        #expect(table.statistics.malformedFDEs == 0)
    }

    @Test("a CIE whose return-address column isn't 16 gives unsupported rows")
    func otherReturnAddressColumn() {
        var builder = CFIBuilder()
        let cie = builder.cie(returnAddress: 5, instructions: [0x0c, 0x07, 0x08, 0x85, 0x01])
        builder.fde(cie: cie, start: 0x1000, length: 0x10, instructions: [])
        let table = builder.compile()
        #expect(rule(table, 0x1000) == .unsupported)
        #expect(table.statistics.unsupported == [.returnAddress: 1])
    }

    @Test("an unknown opcode ends the FDE where it occurs, and is counted", arguments: [UInt8(0x2d), 0x1f, 0x3f])
    func unknownOpcode(opcode: UInt8) {
        let table = compileOne(CFA.advance(2) + CFA.defCFAOffset(16) + CFA.advance(2) + [opcode] + CFA.advance(2))
        #expect(rule(table, 0x1000) == .cfaRSP(8))
        #expect(rule(table, 0x1002) == .cfaRSP(16))
        #expect(rule(table, 0x1004) == .noInfo)
        #expect(rule(table, 0x1030) == .noInfo)
        #expect(table.statistics.malformedFDEs == 1)
    }

    @Test("an operand running past the FDE's end is counted as malformed")
    func truncatedOperand() {
        let table = compileOne(CFA.advance(2) + [0x0c, 0x07])
        #expect(rule(table, 0x1000) == .cfaRSP(8))
        #expect(rule(table, 0x1002) == .noInfo)
        #expect(table.statistics.malformedFDEs == 1)
    }

    @Test("DW_CFA_set_loc moves with the FDE's pointer encoding; backwards is malformed")
    func setLocation() {
        var builder = CFIBuilder()
        let cie = builder.cie(augmentation: "zR", augmentationData: [0x03])  // udata4
        builder.fde(
            cie: cie,
            start: 0x1000,
            length: 0x40,
            encoding: 0x03,
            instructions: CFA.defCFAOffset(16) + [0x01] + CFIBuilder.little(0x1010, 4) + CFA.defCFAOffset(24)
        )
        builder.fde(
            cie: cie,
            start: 0x2000,
            length: 0x40,
            encoding: 0x03,
            instructions: CFA.advance(8) + [0x01] + CFIBuilder.little(0x2004, 4) + CFA.defCFAOffset(24)
        )
        let table = builder.compile()
        #expect(rule(table, 0x1000) == .cfaRSP(16))
        #expect(rule(table, 0x1010) == .cfaRSP(24))
        #expect(rule(table, 0x2000) == .cfaRSP(8))
        #expect(rule(table, 0x2008) == .noInfo)
        #expect(table.statistics.malformedFDEs == 1)
    }

    @Test("deeply nested remember_state is bounded and counted")
    func rememberStateBound() {
        let table = compileOne(Array(repeating: 0x0a, count: 100) + CFA.advance(1))
        #expect(rule(table, 0x1000) == .noInfo)
        #expect(table.statistics.malformedFDEs == 1)
    }
}
