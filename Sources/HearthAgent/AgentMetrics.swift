// AgentMetrics.swift: the node agent's own series on /metrics: what it sampled and lost, how well it named
// frames, what it delivered to Pyroscope and what it dropped, and its configuration reloads.

import CoreMetrics
import Glibc
import HearthBase
import HearthSampler

/// The agent's metrics, created once from a factory (the Prometheus registry in production, a test factory in
/// tests).
public struct AgentMetrics: Sendable {
    let factory: any MetricsFactory
    let samples: Counter
    let framesUserNamed: Counter
    let framesUserUnnamed: Counter
    let framesKernelNamed: Counter
    let framesKernelUnnamed: Counter
    let profilesPushed: Counter
    let bytesPushed: Counter
    let spoolDroppedProfiles: Counter
    let spoolBytes: Gauge
    let pushDuration: Timer
    let configReloads: Counter
    let configErrors: Counter
    let targetedContainers: Gauge
    let targetedCgroups: Gauge
    let containersWithoutCgroup: Gauge
    /// Targeted cgroups the in-kernel filter had no room for (their samples count under their container's cgroup).
    let cgroupsNotHeld: Gauge
    /// Worker threads blocked in a workload file's open or read (a hung mount); each holds one thread, never the loop.
    let stalledFileWorkers: Gauge
    /// The sampler thread's CPU time by phase: what the agent's own cost is made of.
    let samplerCPU: [SamplerPhase: FloatingPointCounter]
    /// One per ``lossReasons`` entry, registered at start so a dashboard sees zeros rather than nothing.
    let samplesLost: [Counter]

    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        self.factory = factory
        self.samples = Counter(label: "hearth_agent_samples_total", factory: factory)
        self.framesUserNamed = Self.frames(factory, "user", named: true)
        self.framesUserUnnamed = Self.frames(factory, "user", named: false)
        self.framesKernelNamed = Self.frames(factory, "kernel", named: true)
        self.framesKernelUnnamed = Self.frames(factory, "kernel", named: false)
        self.profilesPushed = Counter(label: "hearth_agent_profiles_pushed_total", factory: factory)
        self.bytesPushed = Counter(label: "hearth_agent_pushed_bytes_total", factory: factory)
        self.spoolDroppedProfiles = Counter(label: "hearth_agent_spool_dropped_profiles_total", factory: factory)
        self.spoolBytes = Gauge(label: "hearth_agent_spool_bytes", factory: factory)
        self.pushDuration = Timer(label: "hearth_agent_push_duration_seconds", factory: factory)
        self.configReloads = Counter(label: "hearth_agent_config_reloads_total", factory: factory)
        self.configErrors = Counter(label: "hearth_agent_config_errors_total", factory: factory)
        self.targetedContainers = Gauge(label: "hearth_agent_targeted_containers", factory: factory)
        self.targetedCgroups = Gauge(label: "hearth_agent_targeted_cgroups", factory: factory)
        self.containersWithoutCgroup = Gauge(label: "hearth_agent_containers_without_cgroup", factory: factory)
        self.cgroupsNotHeld = Gauge(label: "hearth_agent_cgroups_not_held", factory: factory)
        self.stalledFileWorkers = Gauge(label: "hearth_agent_stalled_file_workers", factory: factory)
        self.samplerCPU = Dictionary(
            uniqueKeysWithValues: SamplerPhase.allCases.map { phase in
                (
                    phase,
                    FloatingPointCounter(
                        label: "hearth_agent_sampler_cpu_seconds_total",
                        dimensions: [("phase", phase.rawValue)],
                        factory: factory
                    )
                )
            }
        )
        self.samplesLost = Self.lossReasons.map { reason, _ in
            Counter(label: "hearth_agent_samples_lost_total", dimensions: [("reason", reason)], factory: factory)
        }
        // Registered at start, so a dashboard sees zeros rather than nothing.
        for reason in HostileInput.allCases { self.hostileInput(reason, by: 0) }
    }

    private static func frames(_ factory: any MetricsFactory, _ kind: String, named: Bool) -> Counter {
        Counter(
            label: "hearth_agent_frames_total",
            dimensions: [("kind", kind), ("symbolized", named ? "true" : "false")],
            factory: factory
        )
    }

    /// Push requests by HTTP status (or `error` when no answer came).
    func pushRequest(code: String) {
        Counter(label: "hearth_agent_push_requests_total", dimensions: [("code", code)], factory: self.factory)
            .increment()
    }

    /// Samples with a user stack by the module of their leaf frame, and whether the stack reached a known root
    /// (`_start`, a thread's start): which binaries still give short stacks.
    func recordUnwindQuality(_ quality: UnwindQuality, moduleLabel: (String) -> String) {
        for (name, module) in quality.modules {
            let label = moduleLabel(name)
            for (rooted, count) in [("true", module.rooted), ("false", module.samples - module.rooted)] where count > 0
            {
                Counter(
                    label: "hearth_agent_unwind_samples_total",
                    dimensions: [("module", label), ("rooted", rooted)],
                    factory: self.factory
                ).increment(by: count)
            }
        }
    }

    /// Unwind tables loaded in the background, and the time from the sample that asked to the tables being loaded.
    func recordUnwindTableLoads(_ loads: [UnwindTableLoad]) {
        for load in loads {
            let kind = load.isReload ? "reload" : "load"
            Counter(label: "hearth_agent_unwind_table_loads_total", dimensions: [("kind", kind)], factory: self.factory)
                .increment()
            Timer(label: "hearth_agent_unwind_table_load_seconds", factory: self.factory)
                .recordNanoseconds(load.latency.nanoseconds)
            self.hostileInput(.unwindFileOverLimits, by: load.report.filesOverLimits)
            if load.report.modulesEvicted > 0 {
                Counter(label: "hearth_agent_unwind_modules_evicted_total", factory: self.factory)
                    .increment(by: load.report.modulesEvicted)
            }
        }
    }

    /// What a workload made the agent refuse, cut short or coarsen: each is a file, map or tree a pod controls.
    enum HostileInput: String, CaseIterable, Sendable {
        /// A FIFO, socket, device or directory named as a binary, debug file or perf map: never read.
        case refusedFile = "refused_file"
        /// A perf map or process map cut at its byte or entry limit.
        case truncatedInput = "truncated_input"
        /// A file whose call frame information went past a limit (size, sparse, duplicate FDEs, rows).
        case unwindFileOverLimits = "unwind_file_over_limits"
        /// A sample from a cgroup nested in a targeted container, counted under the container's cgroup.
        case nestedCgroupSample = "nested_cgroup_sample"
        /// A file open or read that did not return in time (a hung network or FUSE mount), or was refused because
        /// an earlier one on the same device had not.
        case stalledFile = "stalled_file"
        /// A sample of a target that had used up its share of the kernel's counts map that interval (too many
        /// threads or distinct stacks), counted under its container without stacks.
        case overTargetShare = "over_target_share"
    }

    func hostileInput(_ reason: HostileInput, by count: Int) {
        Counter(
            label: "hearth_agent_hostile_input_total",
            dimensions: [("reason", reason.rawValue)],
            factory: self.factory
        )
        .increment(by: max(0, count))
    }

    /// Failed push requests by HTTP status (or `error`).
    func pushFailure(code: String) {
        Counter(label: "hearth_agent_push_failures_total", dimensions: [("code", code)], factory: self.factory)
            .increment()
    }

    /// Where the sampler thread spends its CPU time.
    enum SamplerPhase: String, CaseIterable, Sendable {
        /// Walking the cgroup tree and rebuilding the attribution.
        case attribute
        /// Reading the kernel maps, symbolizing and counting stacks.
        case drain
        /// Building, encoding and compressing the interval's profiles.
        case upload
    }

    /// Runs `work` and adds the calling thread's CPU time to `phase`.
    func measure<Result>(_ phase: SamplerPhase, _ work: () throws -> Result) rethrows -> Result {
        let start = Self.threadCPUSeconds()
        defer { self.samplerCPU[phase]?.increment(by: max(0, Self.threadCPUSeconds() - start)) }
        return try work()
    }

    private static func threadCPUSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }

    static let lossReasons: [(String, any KeyPath<SamplerCounters, UInt64> & Sendable)] = [
        ("counts_map_full", \.countsMapFull),
        ("config_missing", \.configMissing),
        ("user_stack_error", \.userStackErrors),
        ("kernel_stack_error", \.kernelStackErrors),
        ("stack_collision", \.stackCollisions),
        ("stack_map_full", \.stackMapFull),
        ("stack_missing_at_drain", \.stacksMissingAtDrain),
    ]

    /// Samples lost since the last report, by reason (the program's counters are cumulative).
    func recordLosses(_ counters: SamplerCounters, previous: SamplerCounters) {
        for ((_, path), counter) in zip(Self.lossReasons, self.samplesLost) {
            let (now, before) = (counters[keyPath: path], previous[keyPath: path])
            counter.increment(by: now >= before ? Int64(now - before) : 0)
        }
    }
}
