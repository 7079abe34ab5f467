// CPUProfile.swift: the profile model every output is rendered from: frames, mappings, samples with their labels,
// and the CPUProfile that holds them, with its totals (samples, CPU time, distinct stacks).

import FoundationEssentials
import HearthBase

/// One frame of a call stack: a function in a binary, or an address that could not be named.
public struct ProfileFrame: Hashable, Sendable {
    /// The display name: a demangled function name, or `module+0xoffset` when the address is unresolved.
    public var function: String
    /// The binary the frame's code belongs to: a file path, or `[kernel.kallsyms]` for the kernel.
    public var module: String
    /// The instruction address (for user frames, the virtual address in the sampled process).
    public var address: UInt64
    /// The GNU build id of ``module`` in lowercase hex, when known.
    public var buildID: String?
    /// Whether the frame is kernel code.
    public var isKernel: Bool
    /// Whether ``function`` is a real symbol name rather than a `module+0xoffset` placeholder.
    public var isResolved: Bool

    /// Creates a frame.
    /// - Parameters:
    ///   - function: The display name, or `module+0xoffset` when unresolved.
    ///   - module: The binary's path, or `[kernel.kallsyms]`.
    ///   - address: The instruction address.
    ///   - buildID: The binary's GNU build id in hex, if known.
    ///   - isKernel: Whether the frame is kernel code.
    ///   - isResolved: Whether `function` is a real symbol name.
    public init(
        function: String,
        module: String,
        address: UInt64,
        buildID: String? = nil,
        isKernel: Bool = false,
        isResolved: Bool = true
    ) {
        self.function = function
        self.module = module
        self.address = address
        self.buildID = buildID
        self.isKernel = isKernel
        self.isResolved = isResolved
    }

    /// ``function``, or `[unknown]` when it is empty: the name every output shows.
    var displayName: String {
        self.function.isEmpty ? "[unknown]" : self.function
    }
}

/// A binary mapped into memory: the address range it occupies, where in the file that range starts, and its
/// identity. Mappings let a server-side symbolizer name the frames the agent could not.
public struct ProfileMapping: Hashable, Sendable {
    /// The first address of the mapping.
    public var start: UInt64
    /// The first address after the mapping.
    public var limit: UInt64
    /// The file offset that ``start`` corresponds to.
    public var fileOffset: UInt64
    /// The mapped file's path, or a virtual name such as `[vdso]` or `[kernel.kallsyms]`.
    public var file: String
    /// The file's GNU build id in lowercase hex, when known.
    public var buildID: String?

    /// Creates a mapping.
    /// - Parameters:
    ///   - start: The first address of the mapping.
    ///   - limit: The first address after the mapping.
    ///   - fileOffset: The file offset that `start` corresponds to.
    ///   - file: The mapped file's path or virtual name.
    ///   - buildID: The file's GNU build id in hex, if known.
    public init(start: UInt64, limit: UInt64, fileOffset: UInt64 = 0, file: String, buildID: String? = nil) {
        self.start = start
        self.limit = limit
        self.fileOffset = fileOffset
        self.file = file
        self.buildID = buildID
    }

    /// Whether `address` lies in `start..<limit`.
    public func contains(_ address: UInt64) -> Bool {
        address >= self.start && address < self.limit
    }
}

/// A call stack and how many times it was sampled.
public struct ProfileSample: Sendable {
    /// The stack, **leaf first** (the function that was running is `frames[0]`).
    public var frames: [ProfileFrame]
    /// The number of samples that saw this stack.
    public var count: Int64
    /// String labels, for example `pid`, `comm` (the process name) and `thread`.
    ///
    /// A `comm` label becomes the root frame of folded stacks and flame graphs. In pprof every label becomes a
    /// sample label, which Grafana Pyroscope turns into a series label: keep the set small.
    public var labels: [String: String]
    /// Numeric labels, written to pprof as `Label.num` (for example a thread id). Grafana Pyroscope ignores
    /// numeric labels; `go tool pprof` shows them. Don't reuse a key of ``labels``.
    public var numericLabels: [String: Int64]

    /// Creates a sample.
    /// - Parameters:
    ///   - frames: The stack, leaf first.
    ///   - count: The number of samples that saw this stack.
    ///   - labels: String labels such as `pid`, `comm` and `thread`.
    ///   - numericLabels: Numeric labels such as a thread id.
    public init(
        frames: [ProfileFrame],
        count: Int64,
        labels: [String: String] = [:],
        numericLabels: [String: Int64] = [:]
    ) {
        self.frames = frames
        self.count = count
        self.labels = labels
        self.numericLabels = numericLabels
    }

    /// The process name from the `comm` label, when present and not empty.
    var processName: String? {
        guard let comm = self.labels["comm"], !comm.isEmpty else { return nil }
        return comm
    }
}

/// A CPU profile: stacks sampled at a fixed frequency over a span of time.
///
/// Every output of this module is rendered from one: pprof (``PprofEncoder``), folded stacks (``FoldedStacks``),
/// flame graphs (``FlameGraph``) and the top-functions table (``TopFunctions``).
public struct CPUProfile: Sendable {
    /// When sampling started.
    public var startTime: Date
    /// How long sampling ran.
    public var duration: Duration
    /// The sampling frequency in hertz (samples per second per CPU).
    public var frequency: Int
    /// The sampled stacks. Identical stacks may appear more than once; every output merges them.
    public var samples: [ProfileSample]
    /// The binaries mapped by the sampled processes. Frames whose module has no mapping here get one derived
    /// from the frames themselves.
    public var mappings: [ProfileMapping]

    /// Creates a profile.
    /// - Parameters:
    ///   - startTime: When sampling started.
    ///   - duration: How long sampling ran.
    ///   - frequency: The sampling frequency in hertz.
    ///   - samples: The sampled stacks.
    ///   - mappings: The binaries mapped by the sampled processes.
    public init(
        startTime: Date,
        duration: Duration,
        frequency: Int,
        samples: [ProfileSample],
        mappings: [ProfileMapping] = []
    ) {
        self.startTime = startTime
        self.duration = duration
        self.frequency = frequency
        self.samples = samples
        self.mappings = mappings
    }

    /// The number of samples in the profile: the sum of every sample's ``ProfileSample/count``. Samples with a
    /// count of zero or less are ignored, here and by every output.
    public var totalSamples: Int64 {
        self.samples.reduce(0) { $0 + max(0, $1.count) }
    }

    /// The CPU time one sample stands for, in nanoseconds: `1e9 / frequency` (rounded down; 0 when the
    /// frequency is not positive).
    public var periodNanoseconds: Int64 {
        guard self.frequency > 0 else { return 0 }
        return 1_000_000_000 / Int64(self.frequency)
    }

    /// The CPU time all samples stand for, in nanoseconds.
    public var cpuNanoseconds: Int64 {
        self.totalSamples * self.periodNanoseconds
    }

    /// The number of distinct stacks (including the `comm` root, as folded stacks and flame graphs show them).
    public var uniqueStackCount: Int {
        var seen = Set<StackKey>()
        for sample in self.samples where sample.count > 0 {
            seen.insert(StackKey(process: sample.processName, frames: sample.frames.map(\.displayName)))
        }
        return seen.count
    }
}

private struct StackKey: Hashable {
    var process: String?
    var frames: [String]
}
