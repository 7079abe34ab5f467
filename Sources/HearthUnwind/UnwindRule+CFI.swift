// UnwindRule+CFI.swift: compiles a CFI rule row into an UnwindRule, and says why when the BPF side can't express
// it (so the table reports exactly what it gave up on).

/// Why a CFI row became an ``UnwindRule/Kind-swift.struct/unsupported`` row.
public struct UnsupportedReason: Hashable, Sendable, CustomStringConvertible {
    private enum Value: Hashable, Sendable {
        case cfaRegister
        case cfaExpression
        case cfaOffsetRange
        case returnAddress
        case rbpRule
        case rbpOffsetRange
    }

    private let value: Value

    private init(_ value: Value) {
        self.value = value
    }

    /// The CFA is computed from a register other than RSP or RBP (or none was defined).
    public static let cfaRegister = UnsupportedReason(.cfaRegister)
    /// The CFA is a DWARF expression other than the `.plt` one.
    public static let cfaExpression = UnsupportedReason(.cfaExpression)
    /// The CFA offset doesn't fit in an `Int16`.
    public static let cfaOffsetRange = UnsupportedReason(.cfaOffsetRange)
    /// The return address is not saved at CFA − 8 (nor undefined, which means "stop").
    public static let returnAddress = UnsupportedReason(.returnAddress)
    /// RBP is recovered by a rule other than "saved at CFA + offset" (in a register, by an expression...).
    public static let rbpRule = UnsupportedReason(.rbpRule)
    /// RBP's save offset is not a multiple of 8 in ``UnwindRow/rbpOffsetRange``.
    public static let rbpOffsetRange = UnsupportedReason(.rbpOffsetRange)

    public var description: String {
        switch self.value {
        case .cfaRegister: "cfaRegister"
        case .cfaExpression: "cfaExpression"
        case .cfaOffsetRange: "cfaOffsetRange"
        case .returnAddress: "returnAddress"
        case .rbpRule: "rbpRule"
        case .rbpOffsetRange: "rbpOffsetRange"
        }
    }
}

extension UnwindRule {
    /// Compiles the rules in effect at one location.
    ///
    /// - Parameters:
    ///   - state: The CFI rules.
    ///   - signalFrame: Whether the FDE's CIE has the 'S' augmentation.
    /// - Returns: The rule, and why it is ``unsupported`` when it is.
    static func compile(_ state: CFIState, signalFrame: Bool) -> (rule: UnwindRule, reason: UnsupportedReason?) {
        if signalFrame {
            return (.signalFrame, nil)
        }
        switch state.returnAddress {
        case .undefined:
            return (.stop, nil)
        case .offset(-8):
            break
        default:
            return (.unsupported, .returnAddress)
        }
        let kind: Kind
        let offset: Int64
        switch state.cfa {
        case .plt(let threshold):
            return (.plt(threshold: Int16(threshold)), nil)
        case .expression:
            return (.unsupported, .cfaExpression)
        case .unset:
            return (.unsupported, .cfaRegister)
        case .register(X86Register.rsp, let cfaOffset):
            kind = .cfaRSP
            offset = cfaOffset
        case .register(X86Register.rbp, let cfaOffset):
            kind = .cfaRBP
            offset = cfaOffset
        case .register:
            return (.unsupported, .cfaRegister)
        }
        guard let cfaOffset = Int16(exactly: offset) else {
            return (.unsupported, .cfaOffsetRange)
        }
        let rbp: RBPRule
        switch state.rbp {
        case .unspecified, .sameValue:
            rbp = .unchanged
        case .undefined:
            rbp = .undefined
        case .offset(let saved):
            guard saved % 8 == 0, UnwindRow.rbpOffsetRange.contains(saved) else {
                return (.unsupported, .rbpOffsetRange)
            }
            rbp = .saved(atCFAOffset: Int16(saved))
        case .valueOffset, .register, .expression, .valueExpression:
            return (.unsupported, .rbpRule)
        }
        return (UnwindRule(kind: kind, cfaOffset: cfaOffset, rbp: rbp), nil)
    }
}
