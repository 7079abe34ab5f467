// StackAggregator.swift: drained kernel buckets → symbolized stacks counted per group (a process for the local
// profiler, a Pyroscope series for the node agent), with the symbolization rate of what was added.

import Foundation
import HearthProfile
import HearthSampler
import HearthSymbolizer

/// Symbolizes drained buckets and counts each stack per group.
struct StackAggregator<Group: Hashable> {
    struct Key: Hashable {
        var group: Group
        var frames: [ProfileFrame]
    }

    let symbolizer: Symbolizer
    var lastDrain = ContinuousClock.now
    private var counts: [Key: Int64] = [:]
    private var knownProcesses: Set<Int32> = []
    private var liveProcesses: Set<Int32> = []
    private var mappingsByProcess: [Int32: [ProfileMapping]] = [:]
    private var processesByGroup: [Group: Set<Int32>] = [:]
    private(set) var totalSamples: Int64 = 0
    private(set) var userFramesNamed: Int64 = 0
    private(set) var userFramesUnnamed: Int64 = 0
    private(set) var kernelFramesNamed: Int64 = 0
    private(set) var kernelFramesUnnamed: Int64 = 0

    init(symbolizer: Symbolizer) {
        self.symbolizer = symbolizer
    }

    var processCount: Int { self.knownProcesses.count }

    /// The groups that hold samples.
    var groups: Set<Group> { Set(self.processesByGroup.keys) }

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
        let kernel = self.symbolizer.symbolizeKernel(addresses: sample.kernelStack)
        let user = self.symbolizer.symbolizeUser(pid: sample.pid, addresses: sample.userStack)
        for frame in user {
            if frame.function != nil { self.userFramesNamed += count } else { self.userFramesUnnamed += count }
        }
        for frame in kernel {
            if frame.function != nil { self.kernelFramesNamed += count } else { self.kernelFramesUnnamed += count }
        }
        // Leaf first: a sample taken in the kernel has its kernel frames on top of the user stack.
        let frames = (kernel + user).map(ProfileFrame.init(symbolized:))
        self.counts[Key(group: group, frames: frames), default: 0] += count
        self.totalSamples += count
    }

    /// Drops the symbolizer's cache of processes that are gone, so a reused pid is not named after the old one.
    mutating func forgetExitedProcesses() {
        for pid in self.liveProcesses where kill(pid, 0) != 0 && errno == ESRCH {
            self.symbolizer.forget(pid: pid)
            self.liveProcesses.remove(pid)
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

    /// Every counted stack, labelled per group.
    func samples(labels: (Group) -> [String: String]) -> [ProfileSample] {
        self.counts.map { key, count in ProfileSample(frames: key.frames, count: count, labels: labels(key.group)) }
    }

    /// The counted stacks of one group, without labels.
    func samples(of group: Group) -> [ProfileSample] {
        self.counts.compactMap { key, count in
            key.group == group ? ProfileSample(frames: key.frames, count: count) : nil
        }
    }

    /// Forgets the counted stacks (and which processes fed which group), keeping the symbolizer and the known
    /// processes' mappings: the next interval starts empty.
    mutating func resetCounts() {
        self.counts.removeAll(keepingCapacity: true)
        self.processesByGroup.removeAll(keepingCapacity: true)
        self.totalSamples = 0
        self.userFramesNamed = 0
        self.userFramesUnnamed = 0
        self.kernelFramesNamed = 0
        self.kernelFramesUnnamed = 0
    }
}
