// StackAggregator.swift: drained kernel buckets → symbolized stacks counted per group (a process for the local
// profiler, a Pyroscope series for the node agent), with the symbolization rate of what was added.

import Foundation
import HearthProfile
import HearthSampler
import HearthSymbolizer

/// Symbolizes drained buckets and counts each stack per group.
struct StackAggregator<Group: Hashable> {
    /// A group and the interned kernel and user stacks of one bucket.
    struct Key: Hashable {
        var group: Group
        var kernel: Int
        var user: Int
    }

    /// Symbolized stacks, each once: buckets repeat the same stacks every drain and every interval, and a
    /// dictionary lookup of their addresses costs far less than symbolizing them again.
    struct InternedStack {
        var frames: [ProfileFrame]
        var named: Int64
        var unnamed: Int64
        /// For user stacks: whether it reaches a root, and its leaf module.
        var shape: UnwindQuality.Shape?
    }

    let symbolizer: Symbolizer
    var lastDrain = ContinuousClock.now
    private var counts: [Key: Int64] = [:]
    private var stacks: [InternedStack] = []
    private var kernelStackIDs: [[UInt64]: Int] = [:]
    /// The interned stack of samples past their target's share, once it was needed this interval.
    private var overShareStack: Int?
    /// Per process: user stack addresses → interned stack (addresses mean something only within their process).
    private var userStackIDs: [Int32: [[UInt64]: Int]] = [:]
    /// The previous interval's symbolized stacks by address: what this interval sees again is taken from here,
    /// what it does not see is forgotten at the next reset (memory follows the stacks in use, two intervals).
    private var previousKernelStacks: [[UInt64]: InternedStack] = [:]
    private var previousUserStacks: [Int32: [[UInt64]: InternedStack]] = [:]
    /// How many stacks were symbolized, and how many were taken from the previous interval.
    private(set) var stacksSymbolized = 0
    private(set) var stacksReused = 0
    private var knownProcesses: Set<Int32> = []
    private var liveProcesses: Set<Int32> = []
    private var mappingsByProcess: [Int32: [ProfileMapping]] = [:]
    private var processesByGroup: [Group: Set<Int32>] = [:]
    private(set) var totalSamples: Int64 = 0
    private(set) var userFramesNamed: Int64 = 0
    private(set) var userFramesUnnamed: Int64 = 0
    private(set) var kernelFramesNamed: Int64 = 0
    private(set) var kernelFramesUnnamed: Int64 = 0
    /// How well user stacks were unwound since ``takeUnwindQuality()`` was last called.
    private var unwindQuality = UnwindQuality()

    init(symbolizer: Symbolizer) {
        self.symbolizer = symbolizer
    }

    var processCount: Int { self.knownProcesses.count }

    /// Every executable mapping of the processes of `group` (all groups when nil), deduplicated by file and
    /// address range.
    func mappings(of group: Group? = nil) -> [ProfileMapping] {
        let pids = group.map { self.processesByGroup[$0] ?? [] } ?? Set(self.mappingsByProcess.keys)
        var seen: Set<ProfileMapping> = []
        var result: [ProfileMapping] = []
        for pid in pids.sorted() {
            for mapping in self.mappingsByProcess[pid] ?? [] where seen.insert(mapping).inserted {
                result.append(mapping)
            }
        }
        return result
    }

    mutating func add(_ sample: RawStackSample, to group: Group) {
        if sample.isOverTargetShare {
            self.addOverShare(sample, to: group)
            return
        }
        let count = Int64(sample.count)
        self.liveProcesses.insert(sample.pid)
        self.processesByGroup[group, default: []].insert(sample.pid)
        if self.knownProcesses.insert(sample.pid).inserted {
            self.mappingsByProcess[sample.pid] = self.symbolizer.mappings(pid: sample.pid).map {
                ProfileMapping(
                    start: $0.start,
                    limit: $0.end,
                    fileOffset: $0.fileOffset,
                    file: $0.path,
                    buildID: $0.buildID
                )
            }
        }
        let kernel = self.kernelStack(sample.kernelStack)
        let user = self.userStack(pid: sample.pid, sample.userStack)
        self.kernelFramesNamed += self.stacks[kernel].named * count
        self.kernelFramesUnnamed += self.stacks[kernel].unnamed * count
        self.userFramesNamed += self.stacks[user].named * count
        self.userFramesUnnamed += self.stacks[user].unnamed * count
        if let shape = self.stacks[user].shape {
            self.unwindQuality.add(shape, source: sample.userStackSource, count: count)
        }
        self.counts[Key(group: group, kernel: kernel, user: user), default: 0] += count
        self.totalSamples += count
    }

    /// A target's samples past its share of the kernel's counts map: one stack of one named frame, in its group
    /// (the cgroup says which), with no process to track and nothing symbolized or unwound.
    private mutating func addOverShare(_ sample: RawStackSample, to group: Group) {
        let stack: Int
        if let known = self.overShareStack {
            stack = known
        } else {
            let frame = ProfileFrame(
                function: RawStackSample.overTargetShareFrame,
                module: Self.agentModule,
                address: 0
            )
            self.stacks.append(InternedStack(frames: [frame], named: 0, unnamed: 0))
            stack = self.stacks.count - 1
            self.overShareStack = stack
        }
        let count = Int64(sample.count)
        self.counts[Key(group: group, kernel: self.kernelStack([]), user: stack), default: 0] += count
        self.totalSamples += count
    }

    /// The module of frames the agent makes up rather than reads from a process.
    static var agentModule: String { "[hearth]" }

    private mutating func kernelStack(_ addresses: [UInt64]) -> Int {
        if let id = self.kernelStackIDs[addresses] { return id }
        let id: Int
        if let known = self.previousKernelStacks[addresses] {
            id = self.reuse(known)
        } else {
            id = self.intern(self.symbolizer.symbolizeKernel(addresses: addresses))
        }
        self.kernelStackIDs[addresses] = id
        return id
    }

    private mutating func userStack(pid: Int32, _ addresses: [UInt64]) -> Int {
        if let id = self.userStackIDs[pid]?[addresses] { return id }
        let id: Int
        if let known = self.previousUserStacks[pid]?[addresses] {
            id = self.reuse(known)
        } else {
            let frames = Self.symbolizeUser(self.symbolizer, pid: pid, addresses: addresses)
            id = self.intern(frames)
            self.stacks[id].shape = UnwindQuality.shape(of: frames)
        }
        self.userStackIDs[pid, default: [:]][addresses] = id
        return id
    }

    /// Symbolizes a user stack; an unwinder's marker frame (truncated, error) gets its name, not a lookup.
    static func symbolizeUser(_ symbolizer: Symbolizer, pid: Int32, addresses: [UInt64]) -> [SymbolizedFrame] {
        guard let last = addresses.last, let marker = StackMarker(address: last) else {
            return symbolizer.symbolizeUser(pid: pid, addresses: addresses)
        }
        return symbolizer.symbolizeUser(pid: pid, addresses: Array(addresses.dropLast()))
            + [
                SymbolizedFrame(
                    function: marker.name,
                    module: UnwindQuality.markerModule,
                    address: last,
                    moduleOffset: 0
                )
            ]
    }

    private mutating func reuse(_ stack: InternedStack) -> Int {
        self.stacksReused += 1
        self.stacks.append(stack)
        return self.stacks.count - 1
    }

    /// The unwind quality of what was added since the previous call.
    mutating func takeUnwindQuality() -> UnwindQuality {
        defer { self.unwindQuality = UnwindQuality() }
        return self.unwindQuality
    }

    private mutating func intern(_ frames: [SymbolizedFrame]) -> Int {
        self.stacksSymbolized += 1
        let named = Int64(frames.count { $0.function != nil })
        self.stacks.append(
            InternedStack(
                frames: frames.map(ProfileFrame.init(symbolized:)),
                named: named,
                unnamed: Int64(frames.count) - named
            )
        )
        return self.stacks.count - 1
    }

    /// Drops the symbolizer's cache of processes that are gone, so a reused pid is not named after the old one.
    mutating func forgetExitedProcesses() {
        for pid in self.liveProcesses where kill(pid, 0) != 0 && errno == ESRCH {
            self.symbolizer.forget(pid: pid)
            self.liveProcesses.remove(pid)
            // A reused pid must not inherit the old process's symbolized stacks.
            self.userStackIDs.removeValue(forKey: pid)
            self.previousUserStacks.removeValue(forKey: pid)
        }
    }

    /// Drops the mappings of processes that are gone, so a long-running agent's memory follows the live
    /// processes (a recording keeps them for its one profile). Call after the interval's profiles are built.
    mutating func dropExitedProcesses() {
        for pid in self.knownProcesses where !self.liveProcesses.contains(pid) {
            self.knownProcesses.remove(pid)
            self.mappingsByProcess.removeValue(forKey: pid)
        }
    }

    /// Every counted stack, labelled per group; stacks that symbolize the same (several processes of one
    /// group) are merged.
    func samples(labels: (Group) -> [String: String]) -> [ProfileSample] {
        self.merged { _ in true }.map { key, count in
            ProfileSample(frames: key.frames, count: count, labels: labels(key.group))
        }
    }

    /// The counted stacks of every group, without labels, in one pass over the counts.
    func samplesByGroup() -> [Group: [ProfileSample]] {
        var result: [Group: [ProfileSample]] = [:]
        for (key, count) in self.merged({ _ in true }) {
            result[key.group, default: []].append(ProfileSample(frames: key.frames, count: count))
        }
        return result
    }

    private struct FramesKey: Hashable {
        var group: Group
        var frames: [ProfileFrame]
    }

    private func merged(_ include: (Group) -> Bool) -> [FramesKey: Int64] {
        var result: [FramesKey: Int64] = [:]
        for (key, count) in self.counts where include(key.group) {
            // Leaf first: a sample taken in the kernel has its kernel frames on top of the user stack.
            let frames = self.stacks[key.kernel].frames + self.stacks[key.user].frames
            result[FramesKey(group: key.group, frames: frames), default: 0] += count
        }
        return result
    }

    /// Forgets the counts (and which processes fed which group), keeping the symbolizer, the known processes'
    /// mappings and this interval's symbolized stacks for the next one: the next interval starts with no counts.
    mutating func resetCounts() {
        self.previousKernelStacks = self.kernelStackIDs.mapValues { self.stacks[$0] }
        self.previousUserStacks = self.userStackIDs.mapValues { ids in ids.mapValues { self.stacks[$0] } }
        self.counts.removeAll(keepingCapacity: true)
        self.stacks.removeAll(keepingCapacity: true)
        self.kernelStackIDs.removeAll(keepingCapacity: true)
        self.userStackIDs.removeAll(keepingCapacity: true)
        self.overShareStack = nil
        self.processesByGroup.removeAll(keepingCapacity: true)
        self.totalSamples = 0
        self.userFramesNamed = 0
        self.userFramesUnnamed = 0
        self.kernelFramesNamed = 0
        self.kernelFramesUnnamed = 0
    }
}
