// UnwindRule.swift: what the BPF unwinder does at one address (compute the CFA from RSP or RBP, find the saved
// RBP, or follow a command: stop, PLT, signal frame, no info, unsupported), and its 8-byte encoding.

/// How to unwind one frame at a range of addresses, in the form the BPF unwinder can evaluate.
///
/// For ``Kind-swift.struct/cfaRSP`` and ``Kind-swift.struct/cfaRBP`` the caller's frame is found by
/// `CFA = base register + cfaOffset`, return address at `CFA − 8`, caller's RSP = CFA and the caller's RBP from
/// ``rbp``. The other kinds are commands that replace this computation.
public struct UnwindRule: Hashable, Sendable, CustomStringConvertible {
    /// What kind of row this is. New kinds may be added, so don't switch over them exhaustively.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        /// The value stored in the low nibble of an encoded row's kind byte.
        public let rawValue: UInt8

        /// Creates a kind from its encoded value.
        public init(rawValue: UInt8) {
            self.rawValue = rawValue
        }

        /// No unwind information covers the address (a gap between FDEs, or the tail of a damaged FDE).
        public static let noInfo = Kind(rawValue: 0)
        /// CFA = RSP + ``UnwindRule/cfaOffset``.
        public static let cfaRSP = Kind(rawValue: 1)
        /// CFA = RBP + ``UnwindRule/cfaOffset``.
        public static let cfaRBP = Kind(rawValue: 2)
        /// A `.plt` entry: CFA = RSP + 8, plus 8 when (RIP & 15) ≥ ``UnwindRule/cfaOffset`` (10 or 11).
        public static let plt = Kind(rawValue: 3)
        /// A signal trampoline (CIE augmentation 'S'): the caller's registers are in the `ucontext` on the
        /// stack, not described by a CFA rule.
        public static let signalFrame = Kind(rawValue: 4)
        /// The outermost frame (the return address is `DW_CFA_undefined`, as in `_start`): the stack ends here.
        public static let stop = Kind(rawValue: 5)
        /// The CFI here can't be expressed in this format; see ``UnwindTable/Statistics/unsupported``.
        public static let unsupported = Kind(rawValue: 6)

        public var description: String {
            switch self.rawValue {
            case 0: "noInfo"
            case 1: "cfaRSP"
            case 2: "cfaRBP"
            case 3: "plt"
            case 4: "signalFrame"
            case 5: "stop"
            case 6: "unsupported"
            default: "kind\(self.rawValue)"
            }
        }
    }

    /// Where the caller's RBP is.
    public struct RBPRule: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case unchanged
            case undefined
            case saved(Int16)
        }

        private let value: Value

        private init(_ value: Value) {
            self.value = value
        }

        /// RBP was not saved (or is restored already): the caller's RBP is the current RBP.
        public static let unchanged = RBPRule(.unchanged)
        /// RBP's value in the caller can't be recovered (`DW_CFA_undefined`).
        public static let undefined = RBPRule(.undefined)

        /// RBP was saved in memory at CFA + `offset` (a multiple of 8 in −1024...1016, see ``UnwindRow``).
        public static func saved(atCFAOffset offset: Int16) -> RBPRule {
            RBPRule(.saved(offset))
        }

        /// The offset from the CFA where RBP was saved, or nil when it wasn't.
        public var savedAtCFAOffset: Int16? {
            if case .saved(let offset) = self.value {
                return offset
            }
            return nil
        }

        public var description: String {
            switch self.value {
            case .unchanged: "unchanged"
            case .undefined: "undefined"
            case .saved(let offset): "c\(offset)"
            }
        }
    }

    /// The kind of row.
    public var kind: Kind
    /// For ``Kind-swift.struct/cfaRSP`` and ``Kind-swift.struct/cfaRBP``, the offset added to the base register;
    /// for ``Kind-swift.struct/plt``, the `RIP & 15` threshold; otherwise 0.
    public var cfaOffset: Int16
    /// Where the caller's RBP is (``RBPRule/unchanged`` for commands).
    public var rbp: RBPRule

    /// Creates a rule.
    public init(kind: Kind, cfaOffset: Int16 = 0, rbp: RBPRule = .unchanged) {
        self.kind = kind
        self.cfaOffset = cfaOffset
        self.rbp = rbp
    }

    /// A command row (no CFA computation): no info, PLT, signal frame, stop or unsupported.
    public static let noInfo = UnwindRule(kind: .noInfo)
    /// See ``Kind-swift.struct/signalFrame``.
    public static let signalFrame = UnwindRule(kind: .signalFrame)
    /// See ``Kind-swift.struct/stop``.
    public static let stop = UnwindRule(kind: .stop)
    /// See ``Kind-swift.struct/unsupported``.
    public static let unsupported = UnwindRule(kind: .unsupported)

    /// CFA = RSP + `offset`.
    public static func cfaRSP(_ offset: Int16, rbp: RBPRule = .unchanged) -> UnwindRule {
        UnwindRule(kind: .cfaRSP, cfaOffset: offset, rbp: rbp)
    }

    /// CFA = RBP + `offset`.
    public static func cfaRBP(_ offset: Int16, rbp: RBPRule = .unchanged) -> UnwindRule {
        UnwindRule(kind: .cfaRBP, cfaOffset: offset, rbp: rbp)
    }

    /// A `.plt` entry whose push happens at `RIP & 15 == threshold`.
    public static func plt(threshold: Int16) -> UnwindRule {
        UnwindRule(kind: .plt, cfaOffset: threshold)
    }

    public var description: String {
        switch self.kind {
        case .cfaRSP: "rsp+\(self.cfaOffset) rbp=\(self.rbp)"
        case .cfaRBP: "rbp+\(self.cfaOffset) rbp=\(self.rbp)"
        case .plt: "plt(\(self.cfaOffset))"
        default: self.kind.description
        }
    }
}

/// One row of an ``UnwindTable``: the rule in effect from ``address`` up to the next row's address.
///
/// ## Encoding
///
/// ``encoded(base:)`` packs a row into 8 bytes (a little-endian `UInt64`), the unit the BPF table stores:
///
/// | bits  | field |
/// |-------|-------|
/// | 0–31  | `u32` address − the table's ``UnwindTable/baseAddress`` |
/// | 32–35 | ``UnwindRule/Kind-swift.struct`` raw value |
/// | 36–37 | RBP rule: 0 unchanged, 1 saved, 2 undefined |
/// | 38–39 | zero |
/// | 40–47 | `i8` RBP save offset from the CFA ÷ 8 (so −1024...1016 in steps of 8) |
/// | 48–63 | `i16` CFA offset (or the PLT threshold) |
///
/// CFI that needs a larger CFA offset, an RBP offset that isn't a multiple of 8 or lies outside that range,
/// or an address more than 4 GiB above the base is compiled to ``UnwindRule/Kind-swift.struct/unsupported``.
public struct UnwindRow: Hashable, Sendable, CustomStringConvertible {
    /// The first link-time virtual address (as in the ELF file) the rule applies to.
    public var address: UInt64
    /// What to do at this address.
    public var rule: UnwindRule

    /// Creates a row.
    public init(address: UInt64, rule: UnwindRule) {
        self.address = address
        self.rule = rule
    }

    /// The smallest and largest RBP save offsets the encoding holds.
    public static let rbpOffsetRange: ClosedRange<Int64> = -1024...1016

    /// The 8-byte encoding of this row, its address stored relative to `base`. Returns nil if the address is
    /// below `base` or more than `UInt32.max` above it, or the RBP offset is one the encoding can't hold (rows
    /// of an ``UnwindTable`` never are).
    public func encoded(base: UInt64) -> UInt64? {
        guard self.address >= base, self.address - base <= UInt64(UInt32.max) else {
            return nil
        }
        let rbpBits: UInt64
        var rbpSlot: UInt64 = 0
        if let offset = self.rule.rbp.savedAtCFAOffset {
            guard offset % 8 == 0, Self.rbpOffsetRange.contains(Int64(offset)), self.rule.kind.rawValue <= 0x0f else {
                return nil
            }
            rbpBits = 1
            rbpSlot = UInt64(UInt8(bitPattern: Int8(offset / 8)))
        } else if self.rule.rbp == .undefined {
            rbpBits = 2
        } else {
            rbpBits = 0
        }
        return (self.address - base)
            | UInt64(self.rule.kind.rawValue & 0x0f) << 32
            | rbpBits << 36
            | rbpSlot << 40
            | UInt64(UInt16(bitPattern: self.rule.cfaOffset)) << 48
    }

    /// Decodes a row written by ``encoded(base:)``.
    public init(encoded value: UInt64, base: UInt64) {
        let rbp: UnwindRule.RBPRule
        switch (value >> 36) & 3 {
        case 1: rbp = .saved(atCFAOffset: Int16(Int8(bitPattern: UInt8(truncatingIfNeeded: value >> 40))) * 8)
        case 2: rbp = .undefined
        default: rbp = .unchanged
        }
        self.address = base &+ (value & 0xffff_ffff)
        self.rule = UnwindRule(
            kind: UnwindRule.Kind(rawValue: UInt8((value >> 32) & 0x0f)),
            cfaOffset: Int16(bitPattern: UInt16(truncatingIfNeeded: value >> 48)),
            rbp: rbp
        )
    }

    public var description: String {
        "0x\(String(self.address, radix: 16)) \(self.rule)"
    }
}
