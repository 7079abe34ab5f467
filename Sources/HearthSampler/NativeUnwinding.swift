// NativeUnwinding.swift: the opt-in switch for unwinding user stacks from `.eh_frame` tables in the kernel, its
// memory budget (the sizes of the preallocated BPF maps), and what loading one process's tables did.

/// Unwinding user stacks in the kernel from `.eh_frame` tables (compiled by HearthUnwind) instead of frame pointers.
///
/// Every limit here sizes a preallocated BPF map, so the budget is what the kernel locks when the sampler starts.
/// With the defaults that is about 24 MiB: 16 MiB of rows, 1 MiB of process tables, 4.2 MiB of unwound stacks,
/// and small change. See NativeUnwinding.md in the HearthSampler documentation.
public struct NativeUnwinding: Sendable, Hashable {
    /// 8-byte rows for all loaded modules together. Debian's libc needs about 28k, libstdc++ 34k, libswiftCore 81k;
    /// the default, 2M rows (16 MiB), holds a few hundred typical libraries. A module that doesn't fit is unwound
    /// with frame pointers.
    public var rowBudget: UInt32
    /// Modules (ELF files, shared between processes by build id) with tables loaded at once.
    public var maxModules: UInt32
    /// Processes with a mapping table (about 4 KiB each); others keep frame-pointer stacks.
    public var maxProcesses: UInt32
    /// Distinct unwound stacks per drain interval (about 1 KiB each, two sets).
    public var stacksPerInterval: UInt32
    /// Load the tables of every process seen in a drain that has none yet. Off: only ``CPUSampler/loadUnwindTables(pid:)``
    /// (and the configured pid at start) loads them.
    public var loadsTablesOnFirstSample: Bool

    public init(
        rowBudget: UInt32 = 2 << 20,
        maxModules: UInt32 = 4096,
        maxProcesses: UInt32 = 256,
        stacksPerInterval: UInt32 = 2048,
        loadsTablesOnFirstSample: Bool = true
    ) {
        self.rowBudget = rowBudget
        self.maxModules = maxModules
        self.maxProcesses = maxProcesses
        self.stacksPerInterval = stacksPerInterval
        self.loadsTablesOnFirstSample = loadsTablesOnFirstSample
    }

    /// max_entries of the unwinder's maps; every one is 1 when unwinding is off, so it costs nothing.
    static func mapSizes(for unwinding: NativeUnwinding?) -> [String: UInt32] {
        let off = unwinding == nil
        return [
            "unwind_rows": off ? 1 : max(unwinding!.rowBudget, 1),
            "unwind_modules": off ? 1 : max(unwinding!.maxModules, 1),
            "unwind_processes": off ? 1 : max(unwinding!.maxProcesses, 1),
            "unwound_0": off ? 1 : max(unwinding!.stacksPerInterval, 1),
            "unwound_1": off ? 1 : max(unwinding!.stacksPerInterval, 1),
        ]
    }
}

/// What loading one process's unwind tables did.
public struct UnwindTablesReport: Sendable, Hashable {
    /// Executable mappings in the process's table (at most 128; the rest are counted in ``mappingsLeftOut``).
    public var mappings = 0
    public var mappingsLeftOut = 0
    /// Modules whose rows were compiled and written by this load, and modules another process had loaded already.
    public var modulesLoaded = 0
    public var modulesShared = 0
    /// Rows written by this load.
    public var rowsWritten = 0
    /// Executable mappings unwound by frame pointers: anonymous memory, files without CFI or unreadable, the vDSO,
    /// and modules that did not fit the row budget (also in ``modulesOverBudget``).
    public var mappingsWithoutTable = 0
    public var modulesOverBudget = 0

    public init() {}
}

/// Why unwind tables could not be loaded for a process.
public struct UnwindTablesError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        /// Native unwinding is off for this sampler.
        public static let disabled = Code("disabled")
        /// /proc/PID/maps could not be read (the process is gone, or no permission).
        public static let processUnreadable = Code("processUnreadable")
        /// The process table map is full (``NativeUnwinding/maxProcesses``).
        public static let tooManyProcesses = Code("tooManyProcesses")
        /// A BPF map update failed.
        public static let mapOperation = Code("mapOperation")

        public var description: String { self.name }
    }

    public var code: Code
    public var message: String
    public var cause: (any Error & Sendable)?

    public init(code: Code, message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        guard let cause = self.cause else { return "\(self.message) (\(self.code))" }
        return "\(self.message) (\(self.code)): \(cause)"
    }
}
