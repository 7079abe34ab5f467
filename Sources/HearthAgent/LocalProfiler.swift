// LocalProfiler.swift: profiling this machine without a cluster (`hearth-agent profile`): samples with CPUSampler,
// symbolizes at every drain (so processes that exit mid-recording keep their names) and aggregates per process
// into a CPUProfile, with how many frames were named.

import Foundation
import HearthBase
import HearthELF
import HearthProfile
import HearthSampler
import HearthSymbolizer
import Logging

/// Profiles this machine without a cluster: samples with ``CPUSampler``, symbolizes every interval (so processes
/// that exit mid-recording still get names) and aggregates into a ``CPUProfile``.
public struct LocalProfiler: Sendable {
    public struct Options: Sendable, Hashable {
        /// How long to record.
        public var duration: Duration
        /// Samples per second on each CPU.
        public var frequency: Int
        /// Only this process, or every process when nil.
        public var pid: Int32?
        /// How often the kernel maps are drained and symbolized.
        public var drainInterval: Duration
        /// Unwind user stacks from `.eh_frame` in the kernel; frame pointers when nil (the default).
        public var nativeUnwinding: NativeUnwinding?
        /// What the caches of workload data (symbols, maps, call frame information) may hold.
        public var memoryBudget = MemoryBudget()

        public init(
            duration: Duration = .seconds(10),
            frequency: Int = 99,
            pid: Int32? = nil,
            drainInterval: Duration = .seconds(1),
            nativeUnwinding: NativeUnwinding? = nil
        ) {
            self.duration = duration
            self.frequency = frequency
            self.pid = pid
            self.drainInterval = drainInterval
            self.nativeUnwinding = nativeUnwinding
        }
    }

    /// Where a recording is, reported after every drain.
    public struct Progress: Sendable, Hashable {
        public var elapsed: Duration
        public var duration: Duration
        public var samples: Int64
        public var processes: Int
        public var lostSamples: UInt64
    }

    /// A finished recording: the profile and how well it went.
    public struct Report: Sendable {
        public var profile: CPUProfile
        public var counters: SamplerCounters
        /// User-space frames with a function name, and without, over every sample (a frame counts once per
        /// sample that contains it).
        public var userFramesNamed: Int64
        public var userFramesUnnamed: Int64
        public var kernelFramesNamed: Int64
        public var kernelFramesUnnamed: Int64
        public var processes: Int
        /// Whether the recording ended early because it was asked to stop.
        public var stoppedEarly: Bool
        /// Per leaf module, how many stacks reached a root.
        public var unwindQuality = UnwindQuality()
        /// Unwind tables loaded in the background during the recording.
        public var unwindTableLoads: [UnwindTableLoad] = []
        /// The symbolizer's counters: frames named, and files refused or cut short.
        public var symbolizerStatistics = Symbolizer.Statistics()
        /// File opens and reads that stalled (a hung mount) or were refused because their device had stalled.
        public var stalledFileOperations = 0

        /// The share of user frames with a name, from 0 to 1 (1 when there were none).
        public var userSymbolizationRate: Double {
            let total = self.userFramesNamed + self.userFramesUnnamed
            return total == 0 ? 1 : Double(self.userFramesNamed) / Double(total)
        }
    }

    public let options: Options
    private let logger: Logger

    public init(options: Options, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    /// Records for ``Options/duration`` or until `shouldStop` returns true. Blocking: run it on its own thread.
    public func record(
        progress: (Progress) -> Void = { _ in },
        shouldStop: () -> Bool = { false }
    ) throws -> Report {
        let sampler = try CPUSampler(
            configuration: SamplerConfiguration(
                frequency: self.options.frequency,
                pid: self.options.pid,
                nativeUnwinding: self.options.memoryBudget.limiting(self.options.nativeUnwinding)
            ),
            logger: self.logger
        )
        let symbolizer = Symbolizer(configuration: self.options.memoryBudget.symbolizer, logger: self.logger)
        var aggregator = StackAggregator<ProcessGroup>(symbolizer: symbolizer)
        let clock = ContinuousClock()
        let start = clock.now
        let startTime = Date()
        var stoppedEarly = false
        var counters = SamplerCounters()
        var tableLoads: [UnwindTableLoad] = []

        while true {
            let elapsed = start.duration(to: clock.now)
            let remaining = self.options.duration - elapsed
            if remaining <= .zero { break }
            if shouldStop() {
                stoppedEarly = true
                break
            }
            // Sleep in short steps so a stop request is answered quickly.
            let nap = min(self.options.drainInterval, remaining, .milliseconds(200))
            Thread.sleep(forTimeInterval: nap.seconds)
            if aggregator.lastDrain.duration(to: clock.now) >= self.options.drainInterval
                || start.duration(to: clock.now) >= self.options.duration
            {
                let drain = try sampler.drain()
                for sample in drain.samples { aggregator.add(sample, to: ProcessGroup(sample)) }
                tableLoads += drain.unwindTableLoads
                aggregator.forgetExitedProcesses()
                aggregator.lastDrain = clock.now
                counters = drain.counters
                progress(
                    Progress(
                        elapsed: start.duration(to: clock.now),
                        duration: self.options.duration,
                        samples: aggregator.totalSamples,
                        processes: aggregator.processCount,
                        lostSamples: counters.lostSamples
                    )
                )
            }
        }
        // Two drains: the first switches away from the set being written, the second collects what landed in the
        // other set meanwhile.
        for _ in 0..<2 {
            let drain = try sampler.drain()
            for sample in drain.samples { aggregator.add(sample, to: ProcessGroup(sample)) }
            tableLoads += drain.unwindTableLoads
            counters = drain.counters
        }
        let duration = start.duration(to: clock.now)

        var profile = CPUProfile(
            startTime: startTime,
            duration: duration,
            frequency: self.options.frequency,
            samples: aggregator.samples { group in ["comm": group.comm, "pid": "\(group.pid)"] },
            mappings: aggregator.mappings()
        )
        profile.samples.sort { $0.count > $1.count }
        return Report(
            profile: profile,
            counters: counters,
            userFramesNamed: aggregator.userFramesNamed,
            userFramesUnnamed: aggregator.userFramesUnnamed,
            kernelFramesNamed: aggregator.kernelFramesNamed,
            kernelFramesUnnamed: aggregator.kernelFramesUnnamed,
            processes: aggregator.processCount,
            stoppedEarly: stoppedEarly,
            unwindQuality: aggregator.takeUnwindQuality(),
            unwindTableLoads: tableLoads,
            symbolizerStatistics: symbolizer.statistics,
            stalledFileOperations: StallGuard.shared.statistics.stalledOrRefused
        )
    }
}

extension ProfileFrame {
    init(symbolized frame: SymbolizedFrame) {
        self.init(
            function: frame.displayName,
            module: frame.module,
            address: frame.address,
            buildID: frame.buildID,
            isKernel: frame.isKernel,
            isResolved: frame.function != nil
        )
    }
}

/// The local profiler's grouping: one process.
struct ProcessGroup: Hashable {
    var pid: Int32
    var comm: String

    init(_ sample: RawStackSample) {
        self.pid = sample.pid
        self.comm = sample.comm
    }
}
