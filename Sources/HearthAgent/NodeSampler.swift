// NodeSampler.swift: the node agent's sampling loop. Every second it drains the kernel maps, attributes each
// bucket by its cgroup id to a series (target, pod, container), symbolizes it and counts it; every upload interval
// it hands each series' profile to a `ProfileSink` (`PyroscopeSink`: pprof within the server's limits, spooled one
// batch per backend). When the configuration or the node's pods change it drains first (so samples keep the attribution
// they were taken under), then reprograms the in-kernel filter with only the differences.
//
// Blocking work (BPF syscalls, ELF reads) runs on its own thread, never on the cooperative pool.

import CoreMetrics
import Dispatch
import Foundation
import HearthAPI
import HearthBase
import HearthELF
import HearthProfile
import HearthSampler
import HearthSymbolizer
import KubeModel
import KubeRuntime
import Logging
import ServiceLifecycle
import Synchronization

/// Samples the targeted containers of this node and hands their profiles to a sink.
public final class NodeSampler: ServiceLifecycle.Service, Sendable {
    public struct Options: Sendable {
        public var node: String
        /// Where the host's cgroup file system is mounted (its cgroup2 part is found below it).
        public var cgroupRoot: String = "/sys/fs/cgroup"
        /// How often profiles are built and spooled.
        public var uploadInterval: Duration = .seconds(15)
        /// How often the kernel maps are drained and symbolized: short enough that a process living a few
        /// seconds keeps its names (they are read from /proc while it runs), long enough that a busy node costs
        /// little (the legacy Pyroscope agent drained every 15 s).
        public var drainInterval: Duration = .seconds(3)
        /// How often the cgroup tree is walked again with nothing changed (for cgroups nested in containers later);
        /// a pod change or a new configuration re-walks it at once. A walk of a node's tree costs ~20 ms of CPU
        /// (BENCHMARKS.md), so this is rare.
        public var rescanInterval: Duration = .seconds(300)
        /// How often while a targeted container's cgroup is still missing (the runtime creates it after the pod
        /// status names the container).
        public var missingCgroupRescanInterval: Duration = .seconds(5)
        /// User stacks unwound from `.eh_frame` tables in the kernel; frame pointers when nil.
        public var nativeUnwinding: NativeUnwinding? = NativeUnwinding()
        /// What the caches of workload data (symbols, maps, call frame information) may hold.
        public var memoryBudget = MemoryBudget()
        /// New keys each target may add to the kernel's counts map per drain interval; nil: the sampler's default,
        /// the maps' room split evenly between the targets with containers on this node.
        public var keysPerTarget: Int?

        public init(node: String) { self.node = node }
    }

    let options: Options
    let state: AgentState
    let pods: Store<Pod>
    let sink: any ProfileSink
    let metrics: AgentMetrics
    let logger: Logger
    private let stop = Atomic<Bool>(false)
    /// Upload requests from outside (tests): the next loop turn uploads at once.
    private let uploadRequested = Atomic<Bool>(false)
    /// Ends the wait between drains early (stop, upload requests): the loop sleeps, it does not poll.
    private let wakeup = DispatchSemaphore(value: 0)

    public init(
        options: Options,
        state: AgentState,
        pods: Store<Pod>,
        sink: any ProfileSink,
        metrics: AgentMetrics,
        logger: Logger
    ) {
        self.options = options
        self.state = state
        self.pods = pods
        self.sink = sink
        self.metrics = metrics
        self.logger = logger
    }

    /// A sampler whose profiles go to Pyroscope through `spool`.
    public convenience init(
        options: Options,
        state: AgentState,
        pods: Store<Pod>,
        spool: DeliverySpool,
        metrics: AgentMetrics,
        logger: Logger
    ) {
        let sink = PyroscopeSink(spool: spool, metrics: metrics, logger: logger)
        self.init(options: options, state: state, pods: pods, sink: sink, metrics: metrics, logger: logger)
    }

    public func run() async throws {
        try await withTaskCancellationOrGracefulShutdownHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let thread = Thread {
                    do {
                        try self.loop()
                        continuation.resume()
                    } catch {
                        continuation.resume(throwing: error)
                    }
                }
                thread.name = "hearth-sampler"
                thread.start()
            }
        } onCancelOrGracefulShutdown: {
            self.stop.store(true, ordering: .relaxed)
            self.wakeup.signal()
        }
    }

    /// Builds and spools profiles at the next loop turn instead of waiting for the interval.
    public func uploadNow() {
        self.uploadRequested.store(true, ordering: .relaxed)
        self.wakeup.signal()
    }

    // MARK: The loop

    private struct Loop: ~Copyable {
        var sampler: CPUSampler?
        var frequency = 0
        var table = AttributionTable()
        /// The series of this interval, interned: the aggregator counts by index, so a drain hashes an Int per
        /// bucket rather than a series' labels.
        var series: [SeriesAssignment] = []
        var seriesIndexes: [SeriesAssignment: Int] = [:]
        /// The table's cgroups → series index.
        var cgroupSeries: [UInt64: Int] = [:]
        var generation: UInt64 = .max
        var lastScan = ContinuousClock.now - .seconds(3600)
        var aggregator: StackAggregator<Int>

        /// Maps the table's cgroups to series indexes, interning new series.
        mutating func indexSeries() {
            self.cgroupSeries = self.table.cgroups.mapValues { assignment in
                if let index = self.seriesIndexes[assignment] { return index }
                self.series.append(assignment)
                self.seriesIndexes[assignment] = self.series.count - 1
                return self.series.count - 1
            }
        }
        var intervalStart = Date()
        var lastUpload = ContinuousClock.now
        var counters = SamplerCounters()
        var reported = FrameTotals()
        /// The module labels of hearth_agent_unwind_samples_total so far.
        var unwindModuleLabels: Set<String> = []
        /// The cgroup2 levels of the targeted containers' own cgroups, for the kernel's ancestor lookup.
        var ancestorLevels: ClosedRange<Int>?
        /// Targeted cgroups the filter map had no room for.
        var cgroupsLeftOut = 0
        /// Each target's slot in the sampler: its share of the kernel's counts map.
        var targetSlots = TargetSlots(capacity: CPUSampler.maxTargets)
        /// The symbolizer's statistics at the last report, to count what is new.
        var reportedSymbolizer = Symbolizer.Statistics()
        /// The file stall guard's statistics at the last report.
        var reportedStalls = StallGuard.Statistics()
    }

    struct FrameTotals {
        var userNamed: Int64 = 0
        var userUnnamed: Int64 = 0
        var kernelNamed: Int64 = 0
        var kernelUnnamed: Int64 = 0
        var samples: Int64 = 0
    }

    private func loop() throws {
        let clock = ContinuousClock()
        let symbolizer = Symbolizer(configuration: self.options.memoryBudget.symbolizer, logger: self.logger)
        var loop = Loop(aggregator: StackAggregator(symbolizer: symbolizer))
        guard let unified = CgroupMount.unifiedRoot(under: self.options.cgroupRoot) else {
            let problem =
                "no cgroup2 file system at \(self.options.cgroupRoot) or \(self.options.cgroupRoot)/unified: "
                + "Hearth attributes samples by cgroup v2 id (pure v2 or hybrid hosts); mount the host's "
                + "/sys/fs/cgroup and pass it with --cgroup-root"
            self.state.samplerFailed(problem)
            self.logger.error("cannot attribute samples", metadata: ["sampler.problem": "\(problem)"])
            throw AgentError(code: .noCgroup2, message: problem)
        }
        let drainNanoseconds = Int(self.options.drainInterval.nanoseconds)
        while !self.stop.load(ordering: .relaxed) {
            _ = self.wakeup.wait(timeout: .now() + .nanoseconds(drainNanoseconds))
            try self.metrics.measure(.attribute) { try self.attribute(&loop, unified: unified, clock: clock) }
            try self.metrics.measure(.drain) {
                try self.drain(&loop)
                loop.aggregator.forgetExitedProcesses()
            }
            if loop.lastUpload.duration(to: clock.now) >= self.options.uploadInterval
                || self.uploadRequested.exchange(false, ordering: .relaxed)
            {
                self.metrics.measure(.upload) { self.upload(&loop, clock: clock) }
            }
        }
        // Stopping: what was sampled since the last upload still goes out.
        for _ in 0..<2 { try self.drain(&loop) }
        self.upload(&loop, clock: clock)
    }

    /// Recomputes the attribution when the configuration or the pods changed, or the rescan is due.
    private func attribute(_ loop: inout Loop, unified: String, clock: ContinuousClock) throws {
        let generation = self.state.generation
        let rescan =
            loop.table.containersWithoutCgroup.isEmpty
            ? self.options.rescanInterval : self.options.missingCgroupRescanInterval
        guard generation != loop.generation || loop.lastScan.duration(to: clock.now) >= rescan else { return }
        let configuration = self.state.configuration ?? AgentConfiguration(targets: [])
        var snapshot = CgroupSnapshot.scan(root: unified)
        let pods = self.pods.list()
        var table = AttributionTable.build(
            configuration: configuration,
            pods: pods,
            cgroups: snapshot,
            node: self.options.node
        )
        if !table.containersWithoutCgroup.isEmpty {
            // An unfamiliar folder layout: find the containers' processes and take their cgroup from /proc.
            snapshot.merge(CgroupSnapshot.fromProc(containers: table.containersWithoutCgroup, unifiedRoot: unified))
            table = AttributionTable.build(
                configuration: configuration,
                pods: pods,
                cgroups: snapshot,
                node: self.options.node
            )
        }
        loop.lastScan = clock.now
        loop.generation = generation
        // This node samples at the highest rate of the targets with containers here: a target asking for 1000 Hz
        // with no pod on this node costs it nothing.
        let frequency = max(table.containers.values.map(\.sampleRate).max() ?? 0, 1)
        // Every cgroup of a target counts against the target's one share of the counts map.
        loop.targetSlots.assign(Set(table.cgroups.values.map(\.target)))
        let filter = table.cgroups.mapValues { assignment in
            TargetCgroup(
                probability: min(1, Double(assignment.sampleRate) / Double(frequency)),
                target: loop.targetSlots.slots[assignment.target] ?? 0
            )
        }
        // Containers' own cgroups go into the filter first; nested cgroups only while there is room, as the kernel
        // finds a container's cgroup above any nested one at these levels.
        let own = table.containers.keys.compactMap { snapshot.containerCgroups[$0] }
        let priority = Set(own.map(\.id))
        let levels = own.map(\.level)
        let ancestorLevels = levels.min().map { $0...(levels.max() ?? $0) }
        if table == loop.table, loop.sampler != nil, frequency == loop.frequency, ancestorLevels == loop.ancestorLevels
        {
            return
        }

        // Samples taken under the old attribution are counted under it.
        if loop.sampler != nil { try self.drain(&loop) }
        if loop.sampler == nil || frequency != loop.frequency {
            if loop.sampler != nil { try self.drain(&loop) }  // the second set
            loop.sampler = nil
            do {
                let sampler = try CPUSampler(
                    configuration: SamplerConfiguration(
                        frequency: frequency,
                        targetCgroups: [:],
                        keysPerTarget: self.options.keysPerTarget,
                        nativeUnwinding: self.options.memoryBudget.limiting(self.options.nativeUnwinding)
                    ),
                    logger: self.logger
                )
                loop.cgroupsLeftOut = try sampler.updateTargetCgroups(
                    filter,
                    ancestorLevels: ancestorLevels,
                    priority: priority
                )
                loop.sampler = sampler
                loop.counters = SamplerCounters()
                self.state.samplerStarted()
            } catch {
                self.state.samplerFailed("\(error)")
                throw AgentError(code: .samplerFailed, message: "starting the sampler at \(frequency) Hz", cause: error)
            }
            loop.frequency = frequency
        } else if table.cgroups != loop.table.cgroups || ancestorLevels != loop.ancestorLevels {
            loop.cgroupsLeftOut =
                try loop.sampler?.updateTargetCgroups(filter, ancestorLevels: ancestorLevels, priority: priority)
                ?? 0
        }
        loop.ancestorLevels = ancestorLevels
        self.metrics.cgroupsNotHeld.record(loop.cgroupsLeftOut)
        self.state.setDegradation(
            .cgroupsNotHeld,
            loop.cgroupsLeftOut > 0
                ? "\(loop.cgroupsLeftOut) nested cgroups not held by the filter map (counted under their container)"
                : nil
        )
        if table.containers != loop.table.containers
            || table.containersWithoutCgroup != loop.table.containersWithoutCgroup
        {
            self.logger.info(
                "attribution updated",
                metadata: [
                    "attribution.containers": "\(table.containers.count)",
                    "attribution.cgroups": "\(table.cgroups.count)",
                    "attribution.withoutCgroup": "\(table.containersWithoutCgroup.count)",
                    "sampler.frequency": "\(frequency)",
                ]
            )
        }
        loop.table = table
        loop.indexSeries()
        self.metrics.targetedContainers.record(table.containers.count)
        self.metrics.targetedCgroups.record(table.cgroups.count)
        self.metrics.containersWithoutCgroup.record(table.containersWithoutCgroup.count)
    }

    /// Drains the kernel maps into the aggregator under the current attribution.
    private func drain(_ loop: inout Loop) throws {
        guard let sampler = loop.sampler else { return }
        let drain: SamplerDrain
        do {
            drain = try sampler.drain()
        } catch {
            throw AgentError(code: .samplerFailed, message: "draining the sampler", cause: error)
        }
        for sample in drain.samples {
            // The kernel only records targeted cgroups, so every bucket has an assignment.
            guard let series = loop.cgroupSeries[sample.cgroupID] else { continue }
            loop.aggregator.add(sample, to: series)
        }
        self.metrics.recordUnwindQuality(loop.aggregator.takeUnwindQuality()) { module in
            // At most 100 module labels: a node runs many binaries, a time series each would be too many.
            if loop.unwindModuleLabels.contains(module) { return module }
            guard loop.unwindModuleLabels.count < 100 else { return "other" }
            loop.unwindModuleLabels.insert(module)
            return module
        }
        self.metrics.recordUnwindTableLoads(drain.unwindTableLoads)
        self.recordHostileInput(&loop, counters: drain.counters)
        self.metrics.recordLosses(drain.counters, previous: loop.counters)
        loop.counters = drain.counters
        self.reportFrames(&loop)
        self.state.drained(targetedContainers: loop.table.containers.count)
    }

    /// Counts what workloads made the agent refuse, cut short or coarsen, since the last drain.
    private func recordHostileInput(_ loop: inout Loop, counters: SamplerCounters) {
        let statistics = loop.aggregator.symbolizer.statistics
        let before = loop.reportedSymbolizer
        self.metrics.hostileInput(.refusedFile, by: statistics.refusedFiles - before.refusedFiles)
        self.metrics.hostileInput(.truncatedInput, by: statistics.truncatedInputs - before.truncatedInputs)
        loop.reportedSymbolizer = statistics
        let stalls = StallGuard.shared.statistics
        self.metrics.hostileInput(.stalledFile, by: stalls.stalledOrRefused - loop.reportedStalls.stalledOrRefused)
        self.metrics.stalledFileWorkers.record(stalls.stalledWorkers)
        self.state.setDegradation(
            .stalledFiles,
            stalls.stalledWorkers > 0
                ? "\(stalls.stalledWorkers) file reads stalled on a hung mount (their devices are skipped until they return)"
                : nil
        )
        loop.reportedStalls = stalls
        let previous = loop.counters
        func delta(_ counter: KeyPath<SamplerCounters, UInt64>) -> Int {
            let (now, before) = (counters[keyPath: counter], previous[keyPath: counter])
            return Int(clamping: now >= before ? now - before : 0)
        }
        self.metrics.hostileInput(.nestedCgroupSample, by: delta(\.ancestorCgroup))
        self.metrics.hostileInput(.overTargetShare, by: delta(\.overTargetShare))
    }

    private func reportFrames(_ loop: inout Loop) {
        let aggregator = loop.aggregator
        func delta(_ now: Int64, _ before: inout Int64) -> Int64 {
            defer { before = now }
            return max(0, now - before)
        }
        self.metrics.samples.increment(by: delta(aggregator.totalSamples, &loop.reported.samples))
        self.metrics.framesUserNamed.increment(by: delta(aggregator.userFramesNamed, &loop.reported.userNamed))
        self.metrics.framesUserUnnamed.increment(by: delta(aggregator.userFramesUnnamed, &loop.reported.userUnnamed))
        self.metrics.framesKernelNamed.increment(by: delta(aggregator.kernelFramesNamed, &loop.reported.kernelNamed))
        self.metrics.framesKernelUnnamed.increment(
            by: delta(aggregator.kernelFramesUnnamed, &loop.reported.kernelUnnamed)
        )
    }

    /// Builds every series' profile and hands them to the sink.
    private func upload(_ loop: inout Loop, clock: ContinuousClock) {
        let end = Date()
        let start = loop.intervalStart
        let duration = Duration.milliseconds(Int64((end.timeIntervalSince(start) * 1000).rounded()))
        let samplesBySeries = loop.aggregator.samplesByGroup()
        // Series in a stable order (by labels), so requests are reproducible.
        let ordered = samplesBySeries.keys.map { index in
            (index, loop.series[index].labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })
        }
        let profiles = ordered.sorted { $0.1.lexicographicallyPrecedes($1.1) }.map { index, _ in
            let group = loop.series[index]
            return SeriesProfile(
                backend: group.backend,
                labels: group.labels,
                profile: CPUProfile(
                    startTime: start,
                    duration: duration,
                    frequency: group.sampleRate,
                    samples: samplesBySeries[index] ?? [],
                    mappings: loop.aggregator.mappings(of: index)
                )
            )
        }
        self.sink.accept(profiles, start: start, end: end)
        loop.aggregator.resetCounts()
        loop.aggregator.dropExitedProcesses()
        // Series no longer in the table are forgotten with the interval.
        loop.series.removeAll(keepingCapacity: true)
        loop.seriesIndexes.removeAll(keepingCapacity: true)
        loop.indexSeries()
        loop.reported = FrameTotals()
        loop.intervalStart = end
        loop.lastUpload = clock.now
    }
}

/// Why the node agent cannot go on.
public struct AgentError: CodedError {
    public enum Code: String, Sendable, CustomStringConvertible {
        case noCgroup2
        case samplerFailed
        public var description: String { self.rawValue }
    }
    public var code: Code
    public var message: String
    public var cause: (any Error)?
}
