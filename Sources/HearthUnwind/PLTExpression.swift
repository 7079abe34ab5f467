// PLTExpression.swift: recognises the CFA expression binutils emits for `.plt` sections, the only DWARF
// expression the BPF unwinder evaluates (as a fixed formula instead of a stack machine).

/// The `.plt` CFA expression: `DW_OP_breg7 8; DW_OP_breg16 0; DW_OP_lit15; DW_OP_and; DW_OP_lit11;
/// DW_OP_ge; DW_OP_lit3; DW_OP_shl; DW_OP_plus`, that is CFA = RSP + 8 + ((RIP & 15) >= 11 ? 8 : 0).
///
/// A 16-byte PLT entry pushes once (its relocation index) before jumping to PLT0, at offset 11 in the lazy
/// entry (`DW_OP_lit11`) and at offset 10 in the IBT entry of `-z ibtplt` (`DW_OP_lit10`).
enum PLTExpression {
    /// The threshold the expression compares `RIP & 15` with, or nil if `bytes` is some other expression.
    static func threshold(of bytes: ArraySlice<UInt8>) -> UInt8? {
        let prefix: [UInt8] = [0x77, 0x08, 0x80, 0x00, 0x3f, 0x1a]
        let suffix: [UInt8] = [0x2a, 0x33, 0x24, 0x22]
        guard bytes.count == prefix.count + 1 + suffix.count,
            bytes.prefix(prefix.count).elementsEqual(prefix),
            bytes.suffix(suffix.count).elementsEqual(suffix)
        else {
            return nil
        }
        let literal = bytes[bytes.startIndex + prefix.count]
        // DW_OP_lit10 is 0x3a, DW_OP_lit11 0x3b.
        guard literal == 0x3a || literal == 0x3b else {
            return nil
        }
        return literal - 0x30
    }
}
