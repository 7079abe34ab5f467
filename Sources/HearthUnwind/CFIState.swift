// CFIState.swift: one row of the CFI register-rule table, reduced to what the unwinder needs on x86-64: the CFA
// rule, the rule for RBP and the rule for the return address.

/// How to recover a register in the caller's frame (DWARF 5, 6.4.1).
enum RegisterRule: Hashable, Sendable {
    /// No instruction mentioned the register: unwinders treat it as unchanged.
    case unspecified
    /// `DW_CFA_undefined`: the value can't be recovered (for the return address: this is the outermost frame).
    case undefined
    /// `DW_CFA_same_value`.
    case sameValue
    /// Saved in memory at CFA + offset.
    case offset(Int64)
    /// The value is CFA + offset.
    case valueOffset(Int64)
    /// The value is in another register.
    case register(UInt64)
    /// Saved at the address a DWARF expression computes.
    case expression
    /// The value is what a DWARF expression computes.
    case valueExpression
}

/// How to compute the canonical frame address.
enum CFARule: Hashable, Sendable {
    /// No `DW_CFA_def_cfa*` instruction ran yet.
    case unset
    /// A register plus an offset.
    case register(UInt64, offset: Int64)
    /// The standard `.plt` expression: RSP + 8, plus 8 when (RIP & 15) ≥ `threshold` (see ``PLTExpression``).
    case plt(threshold: UInt8)
    /// Any other DWARF expression.
    case expression
}

/// The rules in effect at one location.
struct CFIState: Hashable, Sendable {
    var cfa: CFARule = .unset
    var rbp: RegisterRule = .unspecified
    var returnAddress: RegisterRule = .unspecified
}

/// x86-64 DWARF register numbers (System V psABI, figure 3.36).
enum X86Register {
    static let rbp: UInt64 = 6
    static let rsp: UInt64 = 7
    static let returnAddress: UInt64 = 16
}
