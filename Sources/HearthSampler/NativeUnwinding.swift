// NativeUnwinding.swift: the opt-in switch for unwinding user stacks from `.eh_frame` tables in the kernel, its
// memory budget (the sizes of the preallocated BPF maps), what loading one process's tables did, and the record of a
// load served in the background.

internal import CLibbpf
import HearthBase
import HearthUnwind

/// Unwinding user stacks in the kernel from `.eh_frame` tables (compiled by HearthUnwind) instead of frame pointers.
///
/// Every limit here sizes a preallocated BPF map, so the budget is what the kernel locks when the sampler starts.
/// With the defaults that is about 9 MiB: 4 MiB of rows, 1 MiB of process tables, 4.2 MiB of unwound stacks,
/// and small change; the frame-pointer stack maps shrink by 30 MiB at the same time (``stackTraceDepth``). See NativeUnwinding.md in the HearthSampler documentation.
public struct NativeUnwinding: Sendable, Hashable {
    /// 8-byte rows for all loaded modules together. Debian's libc needs about 28k, libstdc++ 34k, libswiftCore 81k;
    /// the default, 512k rows (4 MiB), holds a few dozen typical libraries. When a module does not fit, the modules
    /// sampled least recently are evicted to make room; one larger than the whole budget is unwound with frame
    /// pointers.
    public var rowBudget: UInt32
    /// Modules (ELF files, shared between processes by build id) with tables loaded at once.
    public var maxModules: UInt32
    /// Processes with a mapping table (about 4 KiB each); when full, a process not sampled for a minute makes room,
    /// others keep frame-pointer stacks.
    public var maxProcesses: UInt32
    /// Distinct unwound stacks per drain interval (about 1 KiB each, two sets). With the kernel's stack maps it bounds
    /// what the targets share (``CPUSampler/defaultKeysPerTarget(targets:nativeUnwinding:)``).
    public var stacksPerInterval: UInt32
    /// Load the tables of every process the program samples without tables, in the background as soon as it asks.
    /// Off: only ``CPUSampler/loadUnwindTables(pid:)`` (and the configured pid at start) loads them.
    public var loadsTablesOnFirstSample: Bool
    /// A module sampled this recently is not evicted (evicting code in use would only thrash).
    public var evictionGrace: Duration = .seconds(10)
    /// The largest call frame information section compiled, read in pieces (``UnwindTable/Limits/maximumSectionBytes``);
    /// a module with a larger one is unwound with frame pointers.
    public var maximumSectionBytes: Int = UnwindTable.Limits().maximumSectionBytes

    public init(
        rowBudget: UInt32 = 1 << 19,
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

    /// The row budget that fits `mebibytes` of table memory (8 bytes a row).
    public static func rows(mebibytes: Int) -> UInt32 {
        UInt32(clamping: max(mebibytes, 1) << 17)
    }

    /// Frames a `bpf_get_stackid` stack keeps when unwinding is on: those are kernel stacks, and the user stacks of
    /// processes without tables, so half the depth (and half the memory) of frame-pointer-only sampling.
    static let stackTraceDepth: UInt32 = 64
    /// Buckets of each `bpf_get_stackid` map when unwinding is on. A stack trace map places a stack by its hash
    /// alone, so it must stay sparse; kernel stacks are far fewer than user stacks (most samples are in user mode,
    /// and kernel paths repeat), hence a quarter of the buckets. A collision loses the kernel stack only, counted
    /// in ``SamplerCounters/stackCollisions``.
    static let stackTraceEntries: UInt32 = 4096

    /// New keys one interval can add before a stack map of its set may be full: a key brings at most one user and one
    /// kernel stack. Without unwinding both go to stacks_N; with it, an unwound user stack goes to unwound_N and a
    /// frame-pointer one (a process without tables yet) to stacks_N with the kernel stack.
    static func stackRoom(for unwinding: NativeUnwinding?) -> Int {
        guard let unwinding else { return Int(HEARTH_STACK_MAP_ENTRIES) / 2 }
        return min(Int(max(unwinding.stacksPerInterval, 1)), Int(Self.stackTraceEntries) / 2)
    }

    /// Value sizes of the frame-pointer stack maps: unchanged when unwinding is off.
    static func valueSizes(for unwinding: NativeUnwinding?) -> [String: UInt32] {
        guard unwinding != nil else { return [:] }
        let size = Self.stackTraceDepth * UInt32(MemoryLayout<UInt64>.size)
        return ["stacks_0": size, "stacks_1": size]
    }

    /// max_entries of the unwinder's maps; every one is 1 when unwinding is off, so it costs nothing.
    static func mapSizes(for unwinding: NativeUnwinding?) -> [String: UInt32] {
        guard let unwinding else {
            return [
                "unwind_rows": 1, "unwind_modules": 1, "unwind_processes": 1, "unwind_requests": 1,
                "unwound_0": 1, "unwound_1": 1,
            ]
        }
        return [
            "unwind_rows": max(unwinding.rowBudget, 1),
            "unwind_modules": max(unwinding.maxModules, 1),
            "unwind_processes": max(unwinding.maxProcesses, 1),
            // Requests outlive a full process table (they wait for room), so room for several times as many.
            "unwind_requests": max(unwinding.maxProcesses, 1) * 4,
            "unwound_0": max(unwinding.stacksPerInterval, 1),
            "unwound_1": max(unwinding.stacksPerInterval, 1),
            "stacks_0": Self.stackTraceEntries,
            "stacks_1": Self.stackTraceEntries,
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
    /// Modules evicted (least recently sampled first) to make room for this load's.
    public var modulesEvicted = 0
    /// Files whose call frame information went past a limit: a section larger than allowed or sparse, an
    /// `.eh_frame_hdr` listing an FDE more than once, or more rows than one module may have.
    public var filesOverLimits = 0

    public init() {}
}

/// Why unwind tables could not be loaded for a process.
public struct UnwindTablesError: CodedError, Sendable {
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
}

/// One process's tables loaded in the background because the BPF program asked for them.
public struct UnwindTableLoad: Sendable, Hashable {
    public var pid: Int32
    /// What the load did.
    public var report: UnwindTablesReport
    /// From the sample that asked (the process's first sample without tables, or the first that met new code) to
    /// its tables being in the maps: the time during which its stacks were walked with frame pointers.
    public var latency: Duration
    /// Whether this reloaded a process that had tables (new code mapped, or an evicted module).
    public var isReload: Bool

    public init(pid: Int32, report: UnwindTablesReport, latency: Duration, isReload: Bool) {
        self.pid = pid
        self.report = report
        self.latency = latency
        self.isReload = isReload
    }
}
