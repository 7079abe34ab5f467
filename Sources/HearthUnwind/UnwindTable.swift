// UnwindTable.swift: the compiled unwind rows of one ELF file, keyed so that every process mapping the file shares
// them, with a binary-search lookup and the statistics the agent reports per module.

/// The unwind rows of one ELF file, sorted by address, with consecutive duplicates removed.
///
/// Each row applies from its address up to the next row's address; the last row of every FDE's range is
/// followed by a ``UnwindRule/noInfo`` row unless another FDE starts right there. Build one with
/// ``init(contentsOf:logger:)`` or ``init(elf:key:logger:)``.
public struct UnwindTable: Sendable {
    /// What identifies the file: its GNU build id, or else the device and inode it was read from.
    public struct Key: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case buildID(String)
            case sharedFile(buildID: String, identity: String)
            case file(device: UInt64, inode: UInt64)
        }

        private let value: Value

        private init(_ value: Value) {
            self.value = value
        }

        /// A key from a GNU build id (lowercase hex).
        public static func buildID(_ id: String) -> Key {
            Key(.buildID(id))
        }

        /// A key for a file shared by every process mapping a file with the same build id, size and layout
        /// (`ELFFile.sharingIdentity`): a file that merely claims another's build id gets a key of its own.
        public static func sharedFile(buildID: String, identity: String) -> Key {
            Key(.sharedFile(buildID: buildID, identity: identity))
        }

        /// A key from the file's device and inode numbers, for files without a build id.
        public static func file(device: UInt64, inode: UInt64) -> Key {
            Key(.file(device: device, inode: inode))
        }

        /// The build id, when the key is one.
        public var buildID: String? {
            switch self.value {
            case .buildID(let id), .sharedFile(let id, _): id
            case .file: nil
            }
        }

        public var description: String {
            switch self.value {
            case .buildID(let id): "buildid:\(id)"
            case .sharedFile(_, let identity): "file:\(identity)"
            case .file(let device, let inode): "file:\(device):\(inode)"
            }
        }
    }

    /// Counts describing how the table was built.
    public struct Statistics: Hashable, Sendable {
        /// FDEs compiled into rows in full (from `.eh_frame` and `.debug_frame`, including empty ranges).
        public var fdes = 0
        /// FDEs from `.debug_frame` among ``fdes`` (those covering code `.eh_frame` doesn't).
        public var debugFrameFDEs = 0
        /// `.debug_frame` FDEs left out because `.eh_frame` covers their code.
        public var redundantDebugFrameFDEs = 0
        /// FDEs that were damaged (or whose CIE was), used an unknown opcode, or lay outside the file's code;
        /// their ranges, from the point of damage, became ``UnwindRule/noInfo``. A damaged length that ends a
        /// linear walk of `.eh_frame` counts once.
        public var malformedFDEs = 0
        /// FDEs whose range overlapped an earlier one; the later FDE wins from its start address.
        public var overlappingFDEs = 0
        /// CFI rows produced by the FDEs' instructions, before consecutive duplicates were merged.
        public var cfiRows = 0
        /// Rows in the table.
        public var rows = 0
        /// Rows of kind ``UnwindRule/Kind-swift.struct/unsupported``.
        public var unsupportedRows = 0
        /// ``unsupportedRows`` by reason.
        public var unsupported: [UnsupportedReason: Int] = [:]
        /// Bytes of `.eh_frame` and `.debug_frame` read.
        public var cfiBytes = 0
        /// The most bytes of a CFI section held at once (a piece and a CIE read on its own), whatever its size.
        public var largestCFIPieceBytes = 0
        /// `.eh_frame_hdr` entries naming an FDE the table listed already (compiled once).
        public var duplicateFDEEntries = 0
        /// FDEs left out because the table reached its row limit (``UnwindTable/Limits/maximumRows``).
        public var fdesOverRowLimit = 0
        /// Bytes of the table in its 8-byte-per-row encoding (``UnwindRow/encoded(base:)``).
        public var encodedBytes: Int { self.rows * 8 }

        /// Creates empty statistics.
        public init() {}
    }

    /// Which file the rows describe.
    public let key: Key
    /// The addresses covered by FDEs (link-time virtual addresses); empty if there are none.
    public let addressRange: Range<UInt64>
    /// The rows, sorted by address.
    public let rows: [UnwindRow]
    /// How the table was built.
    public let statistics: Statistics

    /// The address encoded row addresses are relative to: the lowest address covered.
    public var baseAddress: UInt64 { self.addressRange.lowerBound }

    init(key: Key, addressRange: Range<UInt64>, rows: [UnwindRow], statistics: Statistics) {
        self.key = key
        self.addressRange = addressRange
        self.rows = rows
        self.statistics = statistics
    }

    /// The row in effect at `address` (a link-time virtual address): the last row whose address is at or below
    /// it. Returns nil below the first row; above the last FDE the row is ``UnwindRule/noInfo``.
    public func row(for address: UInt64) -> UnwindRow? {
        var low = 0
        var high = self.rows.count
        // Find the first row above `address`; the one before it is in effect.
        while low < high {
            let middle = low + (high - low) / 2
            if self.rows[middle].address <= address {
                low = middle + 1
            } else {
                high = middle
            }
        }
        return low == 0 ? nil : self.rows[low - 1]
    }

    /// The rows in their 8-byte encoding, addresses relative to ``baseAddress``.
    public func encodedRows() -> [UInt64] {
        // Building the table dropped every FDE that lies more than 4 GiB above the base, so this can't fail.
        self.rows.map { $0.encoded(base: self.baseAddress) ?? 0 }
    }
}
