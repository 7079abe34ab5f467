// CPUSampler.swift: the CPU sampler: loads the embedded BPF program, attaches it to a cpu-clock perf event on every
// CPU and drains the stacks it aggregates in the kernel, alternating two sets of maps so a drain never races the
// program. Also the live update of the cgroup filter, each target's share of the counts map, and the online-CPU list.

internal import CLibbpf
import Foundation
import HearthBPF
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Samples the stacks of every CPU with the embedded BPF program and aggregates them in the kernel.
///
/// Two sets of count and stack maps alternate. ``drain()`` points the program at the other set, then reads and
/// empties the set it just left, so user space never races the program and the stack map never fills up
/// across intervals. Sampling stops when the sampler is released.
public final class CPUSampler: Sendable {
    private let state: Mutex<State>
    /// nil when native unwinding is off.
    private let unwindTables: UnwindTableService?
    private let logger: Logger
    public let configuration: SamplerConfiguration
    /// The CPUs a perf event was attached to.
    public let cpus: [Int]

    /// Loads the program, fills its filter maps and attaches it to a cpu-clock event on every CPU.
    public init(configuration: SamplerConfiguration, logger: Logger) throws(BPFError) {
        guard (1...10_000).contains(configuration.frequency) else {
            throw BPFError(
                code: .unsupported,
                message: "frequency \(configuration.frequency) Hz is out of range: use 1 to 10000 (99 is typical)"
            )
        }
        LibbpfLog.install(logger)
        let object = try BPFObject(
            bytes: EmbeddedBPFObject.sampler.bytes,
            name: EmbeddedBPFObject.sampler.name,
            mapSizes: NativeUnwinding.mapSizes(for: configuration.nativeUnwinding),
            valueSizes: NativeUnwinding.valueSizes(for: configuration.nativeUnwinding),
            programs: [Self.programName(configuration)]
        )
        let maps = try Maps(object: object)
        var unwindTables: UnwindTableService?
        if let unwinding = configuration.nativeUnwinding {
            var loader = UnwindTableLoader(maps: maps.unwind, budget: unwinding, logger: logger)
            // A process named up front gets its tables before the first sample.
            if let pid = configuration.pid {
                do {
                    _ = try loader.load(pid: pid)
                } catch {
                    logger.warning("no unwind tables yet", metadata: ["pid": "\(pid)", "error": "\(error)"])
                }
            }
            unwindTables = UnwindTableService(
                loader: loader,
                requestsFD: maps.unwindRequests,
                wakeupsFD: maps.unwindWakeups,
                logger: logger
            )
        }

        let targets = try Self.filterEntries(configuration.targetCgroups ?? [:])
        let (entries, _) = try Self.writeTargetCgroups(targets, into: maps.targetCgroups)
        var config = hearth_config()
        config.active_set = 0
        config.filter_pid = UInt32(bitPattern: configuration.pid ?? 0)
        config.filter_cgroups = configuration.targetCgroups == nil ? 0 : 1
        config.unwind_native = configuration.nativeUnwinding == nil ? 0 : 1
        Self.setAncestorLevels(configuration.cgroupAncestorLevels, in: &config)
        config.keys_per_target = Self.keysPerTarget(configuration, targets: targets)
        try Self.writeConfig(config, into: maps.config)

        let program = try object.program(named: Self.programName(configuration))
        let cpus = configuration.cpus ?? OnlineCPUs.read()
        var links = BPFLinkGroup()
        for cpu in cpus {
            let event = try PerfEventDescriptor(cpuClockOn: cpu, frequency: configuration.frequency)
            links.append(try event.attach(program: program))
        }
        logger.debug(
            "sampler attached",
            metadata: ["bpf.cpus": "\(cpus.count)", "bpf.frequency": "\(configuration.frequency)"]
        )

        self.configuration = configuration
        self.cpus = cpus
        self.logger = logger
        self.state = Mutex(
            State(
                object: object,
                links: links,
                maps: maps,
                config: config,
                targetCgroups: entries
            )
        )
        self.unwindTables = unwindTables
        unwindTables?.start()
    }

    deinit {
        // The service writes the maps: it stops before the object (in `state`) is closed.
        self.unwindTables?.stop()
    }

    /// Loads (or reloads, after it mapped new code) the unwind tables of one process, so its user stacks are
    /// walked from `.eh_frame` from the next sample on. Needs a sampler created with ``SamplerConfiguration/nativeUnwinding``.
    /// Blocking (compiling a large library takes a while): call it off the cooperative pool.
    @discardableResult
    public func loadUnwindTables(pid: Int32) throws(UnwindTablesError) -> UnwindTablesReport {
        guard let unwindTables = self.unwindTables else {
            throw UnwindTablesError(code: .disabled, message: "the sampler was created without native unwinding")
        }
        return try unwindTables.load(pid: pid)
    }

    /// The most cgroups the in-kernel filter holds; more are counted under their targeted ancestor
    /// (``SamplerConfiguration/cgroupAncestorLevels``).
    public static let targetCgroupCapacity = Int(HEARTH_TARGET_CGROUPS_ENTRIES)

    /// The most profiling targets with a share of their own: target slots are `0..<maxTargets`.
    public static let maxTargets = Int(HEARTH_MAX_TARGETS)

    /// Replaces the targeted cgroups, their sampling probabilities, their targets' slots and the ancestor levels while
    /// sampling; only the differences reach the kernel map, so unchanged targets lose no sample. Needs a sampler
    /// created with `targetCgroups` set. Cgroups the map has no room for are left out (counted in the returned
    /// number), never an error: list the ones that matter most (containers' own cgroups) in `priority`. Unless
    /// ``SamplerConfiguration/keysPerTarget`` is set, each target's share is recomputed for the targets given.
    @discardableResult
    public func updateTargetCgroups(
        _ targets: [UInt64: TargetCgroup],
        ancestorLevels: ClosedRange<Int>? = nil,
        priority: Set<UInt64> = []
    ) throws(BPFError) -> Int {
        guard self.configuration.targetCgroups != nil else {
            throw BPFError(code: .unsupported, message: "the sampler was created without a cgroup filter")
        }
        let entries = try Self.filterEntries(targets)
        return try self.state.withLock { state throws(BPFError) in
            let fd = state.maps.targetCgroups
            for cgroup in state.targetCgroups.keys where entries[cgroup] != state.targetCgroups[cgroup] {
                var key = cgroup
                _ = bpf_map_delete_elem(fd, &key)
                state.targetCgroups[cgroup] = nil
            }
            let (written, leftOut) = try Self.writeTargetCgroups(
                entries.filter { state.targetCgroups[$0.key] == nil },
                priority: priority,
                room: Self.targetCgroupCapacity - state.targetCgroups.count,
                into: fd
            )
            state.targetCgroups.merge(written) { _, new in new }
            state.noteTargetSlots(written)
            Self.setAncestorLevels(ancestorLevels, in: &state.config)
            state.config.keys_per_target = Self.keysPerTarget(self.configuration, targets: entries)
            try Self.writeConfig(state.config, into: state.maps.config)
            return leftOut
        }
    }

    /// The new keys each target may add to the counts map per drain interval, as the program has it now (0: no limit).
    public var keysPerTarget: Int {
        self.state.withLock { Int($0.config.keys_per_target) }
    }

    /// The new keys each target may add to the counts map per drain interval when
    /// ``SamplerConfiguration/keysPerTarget`` is nil: the room of the counts map, or of the stack maps when they hold
    /// fewer of the keys' stacks (8,192 keys with frame pointers; with unwinding, ``NativeUnwinding/stacksPerInterval``
    /// and at most 2,048), split evenly between the targets with cgroups on this node: every target keeps whole
    /// stacks however many keys another one makes.
    public static func defaultKeysPerTarget(targets: Int, nativeUnwinding: NativeUnwinding?) -> Int {
        let room = min(Int(HEARTH_COUNTS_MAP_ENTRIES), NativeUnwinding.stackRoom(for: nativeUnwinding))
        return max(1, room / max(1, targets))
    }

    /// The config's keys_per_target: the configured share, else the default for the distinct target slots given.
    private static func keysPerTarget(
        _ configuration: SamplerConfiguration,
        targets: [UInt64: FilterEntry]
    ) -> UInt32 {
        if let configured = configuration.keysPerTarget { return UInt32(clamping: max(0, configured)) }
        let slots = Set(targets.values.map(\.target)).count
        return UInt32(
            clamping: Self.defaultKeysPerTarget(targets: slots, nativeUnwinding: configuration.nativeUnwinding)
        )
    }

    /// The kernel's entries for `targets`; a target slot out of range is an error (it would have no share).
    private static func filterEntries(_ targets: [UInt64: TargetCgroup]) throws(BPFError) -> [UInt64: FilterEntry] {
        var entries: [UInt64: FilterEntry] = [:]
        entries.reserveCapacity(targets.count)
        for (cgroup, target) in targets {
            guard (0..<Self.maxTargets).contains(target.target) else {
                throw BPFError(
                    code: .unsupported,
                    message:
                        "target slot \(target.target) of cgroup \(cgroup) is out of range: use 0 to \(Self.maxTargets - 1)"
                )
            }
            entries[cgroup] = FilterEntry(
                threshold: Self.threshold(probability: target.probability),
                target: UInt32(target.target)
            )
        }
        return entries
    }

    private static func setAncestorLevels(_ levels: ClosedRange<Int>?, in config: inout hearth_config) {
        guard let levels, levels.lowerBound > 0 else {
            config.ancestor_level_min = 0
            config.ancestor_level_max = 0
            return
        }
        config.ancestor_level_min = UInt32(levels.lowerBound)
        config.ancestor_level_max = UInt32(
            min(levels.upperBound, levels.lowerBound + Int(HEARTH_MAX_ANCESTOR_LEVELS) - 1)
        )
    }

    /// Removes the unwind tables of one process: its stacks are walked with frame pointers again until its tables
    /// are loaded again (by ``loadUnwindTables(pid:)``, or in the background when the program asks for them and
    /// ``NativeUnwinding/loadsTablesOnFirstSample`` is set). Rows no other process uses are freed.
    public func forgetUnwindTables(pid: Int32) {
        self.unwindTables?.forget(pid: pid)
    }

    /// Reads and empties everything recorded since the previous drain. Blocking: call it off the cooperative pool.
    public func drain() throws(BPFError) -> SamplerDrain {
        var drain = try self.state.withLock { state throws(BPFError) in try state.drain() }
        if let unwindTables = self.unwindTables {
            unwindTables.noteSampled(Set(drain.samples.lazy.map(\.pid)))
            drain.unwindTableLoads = unwindTables.takeLoads()
        }
        return drain
    }

    /// The program's counters so far, without draining.
    public func counters() throws(BPFError) -> SamplerCounters {
        try self.state.withLock { state throws(BPFError) in try state.readCounters() }
    }

    private static func writeConfig(_ config: hearth_config, into fd: Int32) throws(BPFError) {
        var key: UInt32 = 0
        var value = config
        let result = bpf_map_update_elem(fd, &key, &value, UInt64(BPF_ANY))
        if result != 0 { throw BPFError(code: .mapOperation, message: "write the sampler config", errno: -result) }
    }

    /// Adds cgroups to the filter map, those in `priority` first, while there is room; returns what was written and
    /// how many were left out. A full map (E2BIG) is room running out, not an error.
    private static func writeTargetCgroups(
        _ targets: [UInt64: FilterEntry],
        priority: Set<UInt64> = [],
        room: Int = targetCgroupCapacity,
        into fd: Int32
    ) throws(BPFError) -> (written: [UInt64: FilterEntry], leftOut: Int) {
        let ordered = targets.sorted {
            (priority.contains($0.key) ? 0 : 1, $0.key) < (priority.contains($1.key) ? 0 : 1, $1.key)
        }
        var written: [UInt64: FilterEntry] = [:]
        for (cgroup, entry) in ordered {
            guard written.count < room else { break }
            var key = cgroup
            var value = hearth_target_cgroup(probability: entry.threshold, target: entry.target)
            let result = bpf_map_update_elem(fd, &key, &value, UInt64(BPF_ANY))
            if result == -E2BIG || result == -ENOSPC || result == -ENOMEM { break }
            if result != 0 {
                throw BPFError(code: .mapOperation, message: "add target cgroup \(cgroup)", errno: -result)
            }
            written[cgroup] = entry
        }
        return (written, targets.count - written.count)
    }

    /// The program to load: the unwinder's is larger and costs the verifier (CPU the agent pays at every start)
    /// several times more, so it is loaded only when unwinding is on.
    static func programName(_ configuration: SamplerConfiguration) -> String {
        configuration.nativeUnwinding == nil ? "hearth_sample" : "hearth_sample_unwind"
    }

    /// The program keeps a sample when a random 32-bit number is at most this threshold.
    static func threshold(probability: Double) -> UInt32 {
        if probability >= 1 { return HEARTH_PROBABILITY_ONE }
        if probability <= 0 { return 0 }
        return UInt32((probability * Double(HEARTH_PROBABILITY_ONE)).rounded(.down))
    }
}

/// A target_cgroups value as Swift compares it: the sampling threshold and the target slot.
private struct FilterEntry: Hashable {
    var threshold: UInt32
    var target: UInt32
}

/// The map descriptors the sampler uses; valid while the object lives.
private struct Maps {
    let config: Int32
    let counters: Int32
    let targetCgroups: Int32
    /// Per set: each target slot's new keys this interval.
    let targetKeys: [Int32]
    let counts: [Int32]
    let stacks: [Int32]
    let unwound: [Int32]
    let unwind: UnwindTableLoader.Maps
    let unwindRequests: Int32
    let unwindWakeups: Int32

    init(object: borrowing BPFObject) throws(BPFError) {
        self.config = try object.mapDescriptor(named: "config")
        self.counters = try object.mapDescriptor(named: "counters")
        self.targetCgroups = try object.mapDescriptor(named: "target_cgroups")
        self.targetKeys = [
            try object.mapDescriptor(named: "target_keys_0"), try object.mapDescriptor(named: "target_keys_1"),
        ]
        self.counts = [try object.mapDescriptor(named: "counts_0"), try object.mapDescriptor(named: "counts_1")]
        self.stacks = [try object.mapDescriptor(named: "stacks_0"), try object.mapDescriptor(named: "stacks_1")]
        self.unwound = [try object.mapDescriptor(named: "unwound_0"), try object.mapDescriptor(named: "unwound_1")]
        self.unwind = UnwindTableLoader.Maps(
            rows: try object.mapDescriptor(named: "unwind_rows"),
            modules: try object.mapDescriptor(named: "unwind_modules"),
            processes: try object.mapDescriptor(named: "unwind_processes")
        )
        self.unwindRequests = try object.mapDescriptor(named: "unwind_requests")
        self.unwindWakeups = try object.mapDescriptor(named: "unwind_wakeups")
    }
}

extension CPUSampler {
    fileprivate struct State: ~Copyable {
        let object: BPFObject
        let links: BPFLinkGroup
        let maps: Maps
        var config: hearth_config
        /// What the target_cgroups map holds: cgroup id → threshold and target slot.
        var targetCgroups: [UInt64: FilterEntry]
        /// Every target slot used so far is below this: the slots whose key counts a drain zeroes (a slot given up
        /// may still hold counts in the other set).
        var targetSlots: UInt32 = 0
        var batchSupported = true
        var stacksMissingAtDrain: UInt64 = 0

        init(
            object: consuming BPFObject,
            links: consuming BPFLinkGroup,
            maps: Maps,
            config: hearth_config,
            targetCgroups: [UInt64: FilterEntry]
        ) {
            self.object = object
            self.links = links
            self.maps = maps
            self.config = config
            self.targetCgroups = targetCgroups
            self.noteTargetSlots(targetCgroups)
        }

        mutating func noteTargetSlots(_ entries: [UInt64: FilterEntry]) {
            guard let highest = entries.values.lazy.map(\.target).max() else { return }
            self.targetSlots = max(self.targetSlots, highest + 1)
        }

        mutating func drain() throws(BPFError) -> SamplerDrain {
            let drained = Int(self.config.active_set)
            var next = self.config
            next.active_set = drained == 0 ? 1 : 0
            try CPUSampler.writeConfig(next, into: self.maps.config)
            self.config = next
            // A program that read the old config just before the switch finishes within microseconds.
            usleep(2_000)

            let buckets = try self.readAndDeleteCounts(fd: self.maps.counts[drained])
            var stacks = StackReader(fd: self.maps.stacks[drained])
            var unwound = UnwoundStackReader(fd: self.maps.unwound[drained])
            var samples: [RawStackSample] = []
            samples.reserveCapacity(buckets.count)
            for (key, count) in buckets {
                if key.user_stack_id == HEARTH_STACK_OVER_SHARE {
                    samples.append(Self.overShareSample(cgroupID: key.cgroup_id, count: count))
                    continue
                }
                var key = key
                let comm = withUnsafeBytes(of: &key.comm) { raw in
                    String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
                }
                let unwoundUser = key.user_stack_source == UInt32(HEARTH_USER_STACK_UNWOUND)
                let user = unwoundUser ? unwound.stack(id: key.user_stack_id) : stacks.stack(id: key.user_stack_id)
                let kernel = stacks.stack(id: key.kernel_stack_id)
                samples.append(
                    RawStackSample(
                        pid: Int32(bitPattern: key.pid),
                        tid: Int32(bitPattern: key.tid),
                        cgroupID: key.cgroup_id,
                        comm: comm,
                        userStack: user,
                        kernelStack: kernel,
                        count: count,
                        userStackSource: unwoundUser ? .unwindTables : .framePointers
                    )
                )
            }
            self.stacksMissingAtDrain += stacks.missing + unwound.missing
            try stacks.clear()
            try unwound.clear()
            try self.zeroTargetKeys(fd: self.maps.targetKeys[drained])
            return SamplerDrain(
                samples: samples,
                counters: try self.readCounters(),
                usedBatchOperations: self.batchSupported
            )
        }

        /// The bucket of a target's samples past its share in one cgroup: no process, thread or stacks.
        private static func overShareSample(cgroupID: UInt64, count: UInt64) -> RawStackSample {
            RawStackSample(
                pid: 0,
                tid: 0,
                cgroupID: cgroupID,
                comm: "",
                userStack: [],
                kernelStack: [],
                count: count,
                isOverTargetShare: true
            )
        }

        /// Gives every target its whole share again in the drained set, for the interval it will next record.
        private func zeroTargetKeys(fd: Int32) throws(BPFError) {
            var zero: UInt32 = 0
            for slot in 0..<self.targetSlots {
                var key = slot
                let status = bpf_map_update_elem(fd, &key, &zero, UInt64(BPF_ANY))
                if status != 0 {
                    throw BPFError(code: .mapOperation, message: "zero the key count of target \(slot)", errno: -status)
                }
            }
        }

        private mutating func readAndDeleteCounts(fd: Int32) throws(BPFError) -> [(hearth_sample_key, UInt64)] {
            if self.batchSupported {
                do {
                    return try Self.batchLookupAndDelete(fd: fd)
                } catch  where error.errno == EINVAL || error.errno == ENOTSUP || error.errno == 524 {
                    // 524 is the kernel's ENOTSUPP: no batch operations on this kernel.
                    self.batchSupported = false
                }
            }
            return try Self.iterateAndDelete(fd: fd)
        }

        private static func batchLookupAndDelete(fd: Int32) throws(BPFError) -> [(hearth_sample_key, UInt64)] {
            let chunk = 4096
            var keys = [hearth_sample_key](repeating: hearth_sample_key(), count: chunk)
            var values = [UInt64](repeating: 0, count: chunk)
            // The batch token is opaque; a key-sized buffer is large enough for every map type.
            var inBatch = [UInt8](repeating: 0, count: MemoryLayout<hearth_sample_key>.size)
            var outBatch = inBatch
            var result: [(hearth_sample_key, UInt64)] = []
            var first = true
            while true {
                var count = UInt32(chunk)
                let status = inBatch.withUnsafeMutableBytes { inBytes in
                    outBatch.withUnsafeMutableBytes { outBytes in
                        CLibbpf_lookup_and_delete_batch(
                            fd,
                            first ? nil : inBytes.baseAddress,
                            outBytes.baseAddress,
                            &keys,
                            &values,
                            &count
                        )
                    }
                }
                for index in 0..<Int(count) { result.append((keys[index], values[index])) }
                if status == -ENOENT { return result }  // the map is empty now
                if status != 0 {
                    throw BPFError(code: .mapOperation, message: "batch lookup-and-delete counts", errno: -status)
                }
                first = false
                inBatch = outBatch
            }
        }

        private static func iterateAndDelete(fd: Int32) throws(BPFError) -> [(hearth_sample_key, UInt64)] {
            var result: [(hearth_sample_key, UInt64)] = []
            var key = hearth_sample_key()
            var next = hearth_sample_key()
            var hasKey = false
            var keys: [hearth_sample_key] = []
            while withUnsafeMutablePointer(
                to: &key,
                { current in
                    bpf_map_get_next_key(fd, hasKey ? current : nil, &next)
                }
            ) == 0 {
                keys.append(next)
                key = next
                hasKey = true
            }
            for var key in keys {
                var value: UInt64 = 0
                if bpf_map_lookup_elem(fd, &key, &value) == 0 { result.append((key, value)) }
                _ = bpf_map_delete_elem(fd, &key)
            }
            return result
        }

        func readCounters() throws(BPFError) -> SamplerCounters {
            let possibleCPUs = Int(libbpf_num_possible_cpus())
            guard possibleCPUs > 0 else {
                throw BPFError(code: .unsupported, message: "count possible CPUs", errno: -Int32(possibleCPUs))
            }
            var totals = [UInt64](repeating: 0, count: Int(HEARTH_COUNTER_COUNT.rawValue))
            var perCPU = [UInt64](repeating: 0, count: possibleCPUs)
            for index in totals.indices {
                var key = UInt32(index)
                let status = bpf_map_lookup_elem(self.maps.counters, &key, &perCPU)
                if status != 0 {
                    throw BPFError(code: .mapOperation, message: "read sampler counter \(index)", errno: -status)
                }
                totals[index] = perCPU.reduce(0, &+)
            }
            func value(_ counter: hearth_counter) -> UInt64 { totals[Int(counter.rawValue)] }
            var counters = SamplerCounters()
            counters.samples = value(HEARTH_COUNTER_SAMPLES)
            counters.recorded = value(HEARTH_COUNTER_RECORDED)
            counters.idle = value(HEARTH_COUNTER_IDLE)
            counters.filteredByPID = value(HEARTH_COUNTER_FILTERED_PID)
            counters.filteredByCgroup = value(HEARTH_COUNTER_FILTERED_CGROUP)
            counters.subsampled = value(HEARTH_COUNTER_SUBSAMPLED)
            counters.userStackErrors = value(HEARTH_COUNTER_USER_STACK_ERROR)
            counters.kernelStackErrors = value(HEARTH_COUNTER_KERNEL_STACK_ERROR)
            counters.stackCollisions = value(HEARTH_COUNTER_STACK_COLLISION)
            counters.stackMapFull = value(HEARTH_COUNTER_STACK_MAP_FULL)
            counters.countsMapFull = value(HEARTH_COUNTER_COUNTS_MAP_FULL)
            counters.configMissing = value(HEARTH_COUNTER_CONFIG_MISSING)
            counters.stacksMissingAtDrain = self.stacksMissingAtDrain
            counters.unwound = value(HEARTH_COUNTER_UNWOUND)
            counters.unwindTruncated = value(HEARTH_COUNTER_UNWIND_TRUNCATED)
            counters.unwindFailed = value(HEARTH_COUNTER_UNWIND_FAILED)
            counters.unwindFramePointerSteps = value(HEARTH_COUNTER_UNWIND_FP_STEPS)
            counters.unwoundStacksLost = value(HEARTH_COUNTER_UNWOUND_STACK_LOST)
            counters.ancestorCgroup = value(HEARTH_COUNTER_ANCESTOR_CGROUP)
            counters.overTargetShare = value(HEARTH_COUNTER_OVER_SHARE)
            return counters
        }
    }
}
