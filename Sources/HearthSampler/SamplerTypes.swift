// SamplerTypes.swift: the sampler's value types: what it records and filters (frequency, pid, target cgroups and
// their targets' shares, CPUs, native unwinding), the raw stack buckets read from the kernel and how their user stacks
// were walked, the marker frames of unwound stacks, its counters and losses, and the result of one drain.

internal import CLibbpf

/// What the sampler records and filters.
public struct SamplerConfiguration: Sendable, Hashable {
    /// Samples per second on each CPU.
    public var frequency: Int
    /// Only this process (thread group id), or every process when nil.
    public var pid: Int32?
    /// Only these cgroups, each with the probability (0...1] that one of its samples is kept and its target's slot;
    /// every cgroup when nil. An empty dictionary keeps nothing.
    public var targetCgroups: [UInt64: TargetCgroup]?
    /// New keys (process, thread, stacks) each target may add to the kernel's counts map per drain interval; past
    /// it the target's samples are counted under their cgroup alone (``RawStackSample/isOverTargetShare``). nil:
    /// ``CPUSampler/defaultKeysPerTarget(targets:nativeUnwinding:)`` for the targets of the cgroups given; 0: no
    /// limit. Only with ``targetCgroups``.
    public var keysPerTarget: Int?
    /// The levels of the cgroup2 tree at which targeted cgroups sit: a sample from a cgroup that is not targeted is
    /// counted under its ancestor at one of these levels when that one is (at most 8 levels are looked at). nil: no
    /// ancestor lookup.
    public var cgroupAncestorLevels: ClosedRange<Int>?
    /// The CPUs to sample; every online CPU when nil.
    public var cpus: [Int]?
    /// Unwind user stacks from `.eh_frame` tables in the kernel; frame pointers only when nil (the default).
    public var nativeUnwinding: NativeUnwinding?

    public init(
        frequency: Int = 99,
        pid: Int32? = nil,
        targetCgroups: [UInt64: TargetCgroup]? = nil,
        keysPerTarget: Int? = nil,
        cgroupAncestorLevels: ClosedRange<Int>? = nil,
        cpus: [Int]? = nil,
        nativeUnwinding: NativeUnwinding? = nil
    ) {
        self.frequency = frequency
        self.pid = pid
        self.targetCgroups = targetCgroups
        self.keysPerTarget = keysPerTarget
        self.cgroupAncestorLevels = cgroupAncestorLevels
        self.cpus = cpus
        self.nativeUnwinding = nativeUnwinding
    }
}

/// A cgroup of the in-kernel filter: how much of it is sampled, and which profiling target it belongs to.
public struct TargetCgroup: Sendable, Hashable {
    /// The probability (0...1] that one of its samples is kept.
    public var probability: Double
    /// The slot of its profiling target, in `0..<CPUSampler.maxTargets`: every cgroup of one target has the same
    /// slot, and the target's share of the counts map is counted there.
    public var target: Int

    public init(probability: Double = 1, target: Int = 0) {
        self.probability = probability
        self.target = target
    }
}

/// One aggregation bucket read from the kernel: how often a thread was seen in one pair of stacks.
public struct RawStackSample: Sendable, Hashable {
    public var pid: Int32
    public var tid: Int32
    public var cgroupID: UInt64
    public var comm: String
    /// Instruction pointers, leaf first. Empty for kernel threads or when the stack was lost (see counters).
    public var userStack: [UInt64]
    /// Instruction pointers, leaf first. Empty when the sample was taken in user mode.
    public var kernelStack: [UInt64]
    public var count: UInt64
    /// How the user stack was walked.
    public var userStackSource: UserStackSource = .framePointers
    /// The sample's target had used up its share of the counts map this interval: the bucket holds every such sample
    /// of its cgroup, with pid and tid 0, no comm and no stacks.
    public var isOverTargetShare = false

    /// The one frame profiles show for ``isOverTargetShare`` buckets.
    public static let overTargetShareFrame = "[over this target's stack share]"
}

/// How the kernel walked a user stack.
public enum UserStackSource: Sendable, Hashable {
    /// `bpf_get_stackid`, following frame pointers: the process had no unwind tables (or unwinding is off).
    case framePointers
    /// The `.eh_frame` unwinder (``NativeUnwinding``); the stack may end in a ``StackMarker``.
    case unwindTables
}

/// Pseudo-frames that end an unwound user stack instead of a dropped sample.
public enum StackMarker: Sendable, Hashable {
    /// The walk reached its frame limit (128 frames): the stack is deeper.
    case truncated
    /// The walk failed; the raw value is the BPF program's `hearth_unwind_error`.
    case error(reason: UInt32)

    /// The marker a frame address encodes, or nil for a real address.
    public init?(address: UInt64) {
        if address == HEARTH_FRAME_TRUNCATED {
            self = .truncated
        } else if address >= HEARTH_FRAME_ERROR_BASE, address < HEARTH_FRAME_ERROR_BASE + 0x10 {
            self = .error(reason: UInt32(address - HEARTH_FRAME_ERROR_BASE))
        } else {
            return nil
        }
    }

    /// A frame name for profiles: `[truncated]`, `[unwind error: reason]`.
    public var name: String {
        switch self {
        case .truncated: "[truncated]"
        case .error(let reason): "[unwind error: \(Self.reasonNames[reason] ?? "code \(reason)")]"
        }
    }

    static let reasonNames: [UInt32: String] = [
        1: "return address unreadable", 2: "saved rbp unreadable", 3: "bad frame pointer",
        4: "stack not growing", 5: "signal frame unreadable", 6: "bad pc", 7: "no user registers",
    ]
}

/// The program's cumulative counters, summed over CPUs, plus what user space lost while draining.
public struct SamplerCounters: Sendable, Hashable {
    /// Times the BPF program ran.
    public var samples: UInt64 = 0
    /// Samples added to the counts map.
    public var recorded: UInt64 = 0
    /// Samples of the idle task, which are not recorded.
    public var idle: UInt64 = 0
    /// Samples dropped on purpose: pid filter, untargeted cgroup, per-cgroup subsampling.
    public var filteredByPID: UInt64 = 0
    public var filteredByCgroup: UInt64 = 0
    public var subsampled: UInt64 = 0
    /// Losses: each one a sample, or a stack of a recorded sample, that could not be kept.
    public var userStackErrors: UInt64 = 0
    public var kernelStackErrors: UInt64 = 0
    public var stackCollisions: UInt64 = 0
    public var stackMapFull: UInt64 = 0
    public var countsMapFull: UInt64 = 0
    public var configMissing: UInt64 = 0
    /// Stacks a recorded sample referenced that were gone when user space read them.
    public var stacksMissingAtDrain: UInt64 = 0
    /// User stacks walked with unwind tables, those that hit the frame limit, and those that failed.
    public var unwound: UInt64 = 0
    public var unwindTruncated: UInt64 = 0
    public var unwindFailed: UInt64 = 0
    /// Frame-pointer steps the unwinder took where no table row existed.
    public var unwindFramePointerSteps: UInt64 = 0
    /// Unwound stacks that could not be stored (full map or hash collision): their samples have no user stack.
    public var unwoundStacksLost: UInt64 = 0
    /// Samples of a cgroup not in the filter map counted under a targeted ancestor (a cgroup nested in a container).
    public var ancestorCgroup: UInt64 = 0
    /// Samples counted without stacks because their target had used up its share of the counts map: not lost, coarser.
    public var overTargetShare: UInt64 = 0

    public init() {}

    /// Samples dropped because of a full map or a failure.
    public var lostSamples: UInt64 { self.countsMapFull + self.configMissing }

    /// Recorded samples whose user or kernel stack could not be kept.
    public var lostStacks: UInt64 {
        self.userStackErrors + self.kernelStackErrors + self.stackCollisions + self.stackMapFull
            + self.stacksMissingAtDrain + self.unwoundStacksLost
    }
}

/// One drain of the sampler: the buckets recorded since the last drain, and the counters so far.
public struct SamplerDrain: Sendable {
    public var samples: [RawStackSample]
    public var counters: SamplerCounters
    /// Whether the kernel supported batch lookup-and-delete (otherwise the map was iterated).
    public var usedBatchOperations: Bool
    /// Unwind tables loaded in the background since the previous drain (native unwinding only).
    public var unwindTableLoads: [UnwindTableLoad] = []
}
