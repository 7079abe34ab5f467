// SamplerTypes.swift: the sampler's value types: what it records and filters (frequency, pid, target cgroups,
// CPUs), the raw stack buckets read from the kernel, its counters and losses, and the result of one drain.

/// What the sampler records and filters.
public struct SamplerConfiguration: Sendable, Hashable {
    /// Samples per second on each CPU.
    public var frequency: Int
    /// Only this process (thread group id), or every process when nil.
    public var pid: Int32?
    /// Only these cgroups, each with the probability (0...1] that one of its samples is kept; every cgroup
    /// when nil. An empty dictionary keeps nothing.
    public var targetCgroups: [UInt64: Double]?
    /// The CPUs to sample; every online CPU when nil.
    public var cpus: [Int]?

    public init(frequency: Int = 99, pid: Int32? = nil, targetCgroups: [UInt64: Double]? = nil, cpus: [Int]? = nil) {
        self.frequency = frequency
        self.pid = pid
        self.targetCgroups = targetCgroups
        self.cpus = cpus
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

    public init() {}

    /// Samples dropped because of a full map or a failure.
    public var lostSamples: UInt64 { self.countsMapFull + self.configMissing }

    /// Recorded samples whose user or kernel stack could not be kept.
    public var lostStacks: UInt64 {
        self.userStackErrors + self.kernelStackErrors + self.stackCollisions + self.stackMapFull
            + self.stacksMissingAtDrain
    }
}

/// One drain of the sampler: the buckets recorded since the last drain, and the counters so far.
public struct SamplerDrain: Sendable {
    public var samples: [RawStackSample]
    public var counters: SamplerCounters
    /// Whether the kernel supported batch lookup-and-delete (otherwise the map was iterated).
    public var usedBatchOperations: Bool
}
