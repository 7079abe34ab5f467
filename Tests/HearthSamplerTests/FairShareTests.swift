// FairShareTests.swift: each profiling target's share of the kernel's counts map. On the real kernel, two targets in
// two cgroups: one floods the map with a new (thread, stack) key per thread, the other is well-behaved. Past its
// share the flood is counted under its cgroup without stacks, the other keeps whole, named stacks, and no sample is
// lost. Also the default share and how the sampler keeps it in step with the targets.

import Foundation
import HearthSampler
import HearthSymbolizer
import HearthTestSupport
import Logging
import Testing

@Suite("Fair share: the default")
struct FairShareDefaultTests {
    @Test("the counts map, or the stack maps when they hold fewer keys' stacks, split evenly between the targets")
    func defaultShare() {
        // Frame pointers: a new key brings a user and a kernel stack into one 16,384-entry stack map.
        #expect(CPUSampler.defaultKeysPerTarget(targets: 0, nativeUnwinding: nil) == 8192)
        #expect(CPUSampler.defaultKeysPerTarget(targets: 1, nativeUnwinding: nil) == 8192)
        #expect(CPUSampler.defaultKeysPerTarget(targets: 4, nativeUnwinding: nil) == 2048)
        // Unwinding: 2,048 unwound stacks per interval, and kernel plus frame-pointer stacks in 4,096 entries.
        #expect(CPUSampler.defaultKeysPerTarget(targets: 1, nativeUnwinding: NativeUnwinding()) == 2048)
        #expect(CPUSampler.defaultKeysPerTarget(targets: 3, nativeUnwinding: NativeUnwinding()) == 682)
        #expect(
            CPUSampler.defaultKeysPerTarget(targets: 1, nativeUnwinding: NativeUnwinding(stacksPerInterval: 512))
                == 512
        )
        #expect(
            CPUSampler.defaultKeysPerTarget(targets: 1, nativeUnwinding: NativeUnwinding(stacksPerInterval: 65536))
                == 2048
        )
        // Never zero (which would mean no limit), however many targets.
        #expect(CPUSampler.defaultKeysPerTarget(targets: CPUSampler.maxTargets * 100, nativeUnwinding: nil) == 1)
    }
}

@Suite(
    "Fair share of the counts map on the real kernel",
    .serialized,
    .enabled(if: BPFTestSupport.enabled, BPFTestSupport.skipReason)
)
struct FairShareTests {
    let logger = Logger(label: "test")
    /// The share the tests set: far below what the flood makes in one interval.
    static let share = 16
    static let floodThreads = 48

    @Test("the share follows the targets given unless it is configured; a slot out of range is refused")
    func shareFollowsTargets() throws {
        let sampler = try CPUSampler(
            configuration: .init(
                frequency: 99,
                targetCgroups: [
                    1001: TargetCgroup(target: 0), 1002: TargetCgroup(target: 1), 1003: TargetCgroup(target: 1),
                ]
            ),
            logger: self.logger
        )
        #expect(sampler.keysPerTarget == CPUSampler.defaultKeysPerTarget(targets: 2, nativeUnwinding: nil))
        try sampler.updateTargetCgroups(
            Dictionary(uniqueKeysWithValues: (0..<4).map { (UInt64(2000 + $0), TargetCgroup(target: $0)) })
        )
        #expect(sampler.keysPerTarget == CPUSampler.defaultKeysPerTarget(targets: 4, nativeUnwinding: nil))
        #expect(throws: BPFError.self) {
            try sampler.updateTargetCgroups([3000: TargetCgroup(target: CPUSampler.maxTargets)])
        }

        let configured = try CPUSampler(
            configuration: .init(frequency: 99, targetCgroups: [:], keysPerTarget: Self.share),
            logger: self.logger
        )
        try configured.updateTargetCgroups([1001: TargetCgroup(target: 0), 1002: TargetCgroup(target: 1)])
        #expect(configured.keysPerTarget == Self.share)
    }

    @Test(
        "a target flooding the map stops at its share and is counted without stacks; the other keeps named stacks",
        .timeLimit(.minutes(2))
    )
    func floodStopsAtItsShare() throws {
        let tenants = try TenantCgroups()
        defer { tenants.remove() }
        let binary = try FairShareWorkload.binary.get()
        let flood = try tenants.start(binary, ["flood", "\(Self.floodThreads)"], in: tenants.flood)
        let steady = try tenants.start(binary, ["steady"], in: tenants.steady)
        defer {
            flood.stop()
            steady.stop()
        }
        let sampler = try CPUSampler(
            configuration: .init(
                frequency: 499,
                targetCgroups: [
                    tenants.floodID: TargetCgroup(target: 0),
                    tenants.steadyID: TargetCgroup(target: 1),
                ],
                keysPerTarget: Self.share
            ),
            logger: self.logger
        )
        var recording = try Recording.record(sampler, tenants: tenants) { recording in
            recording.overShareSamples >= 200 && recording.steadyNamed(steady.pid) >= 200
        }
        let steadyNamed = recording.steadyNamed(steady.pid)
        let floodNamed = recording.named(recording.flood.filter { !$0.isOverTargetShare }, pid: flood.pid, "flood_leaf")
        // With nothing targeted running, two more drains return everything recorded.
        flood.stop()
        steady.stop()
        try recording.finish(sampler, tenants: tenants)

        // The flood: new keys stop at the share (plus one per CPU that passed the check at the same moment)...
        let mostKeys = recording.floodKeysPerDrain.max() ?? 0
        #expect(mostKeys <= Self.share + sampler.cpus.count, "\(recording.floodKeysPerDrain)")
        #expect(floodNamed > 0, "the flood's first keys keep their stacks")
        // ...and the rest of its samples are counted in one bucket per drain, under its cgroup, without stacks.
        #expect(recording.overShareSamples >= 200)
        #expect(recording.overShareBucketsPerDrain.allSatisfy { $0 <= 1 }, "\(recording.overShareBucketsPerDrain)")
        let overShare = recording.flood.filter(\.isOverTargetShare)
        #expect(overShare.allSatisfy { $0.pid == 0 && $0.tid == 0 && $0.userStack.isEmpty && $0.kernelStack.isEmpty })
        #expect(recording.counters.overTargetShare == recording.overShareSamples)
        // The well-behaved target: every sample with its own stack, named through steady_middle.
        #expect(recording.steady.allSatisfy { !$0.isOverTargetShare })
        #expect(steadyNamed >= 200, "\(steadyNamed) of \(recording.steady.reduce(0) { $0 + $1.count }) named")
        // Nothing lost: every sample the program recorded was drained, the maps never ran full.
        #expect(recording.counters.countsMapFull == 0)
        #expect(recording.counters.stackMapFull == 0)
        #expect(recording.counters.lostSamples == 0)
        #expect(recording.drainedSamples == recording.counters.recorded)
    }

    @Test(
        "without a share (0) the same flood adds more keys an interval than the share allows",
        .timeLimit(.minutes(2))
    )
    func floodWithoutShare() throws {
        let tenants = try TenantCgroups()
        defer { tenants.remove() }
        let flood = try tenants.start(
            try FairShareWorkload.binary.get(),
            ["flood", "\(Self.floodThreads)"],
            in: tenants.flood
        )
        defer { flood.stop() }
        let sampler = try CPUSampler(
            configuration: .init(
                frequency: 499,
                targetCgroups: [tenants.floodID: TargetCgroup(target: 0)],
                keysPerTarget: 0
            ),
            logger: self.logger
        )
        let limit = Self.share + sampler.cpus.count
        let recording = try Recording.record(sampler, tenants: tenants) { recording in
            (recording.floodKeysPerDrain.max() ?? 0) > limit
        }
        #expect((recording.floodKeysPerDrain.max() ?? 0) > limit, "\(recording.floodKeysPerDrain)")
        #expect(recording.counters.overTargetShare == 0)
        #expect(recording.flood.allSatisfy { !$0.isOverTargetShare })
    }
}

/// `Fixtures/fair_share_workload.c`, built once per test process with frame pointers and without inlining.
enum FairShareWorkload {
    static let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/fair_share_workload.c").path

    static let binary = Result {
        try CFixture.build(
            source,
            name: "fair_share_workload",
            flags: ["-O0", "-g", "-fno-omit-frame-pointer", "-fno-inline", "-pthread"]
        )
    }
}

/// Two targets' cgroups in a scratch folder of the cgroup2 tree; removed, after their processes, by ``remove()``.
struct TenantCgroups {
    let base: String
    let flood: String
    let steady: String
    let floodID: UInt64
    let steadyID: UInt64

    init() throws {
        // Hybrid hosts mount cgroup2 below unified/; only cgroup2 folders have cgroup.controllers.
        let unified = try #require(
            ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"].first {
                FileManager.default.fileExists(atPath: $0 + "/cgroup.controllers")
            },
            "no cgroup2 mount"
        )
        self.base = "\(unified)/hearth-fair-\(UUID().uuidString.prefix(8))"
        self.flood = self.base + "/flood"
        self.steady = self.base + "/steady"
        for path in [self.base, self.flood, self.steady] {
            try #require(mkdir(path, 0o755) == 0, "mkdir \(path): errno \(errno)")
        }
        self.floodID = try Self.id(of: self.flood)
        self.steadyID = try Self.id(of: self.steady)
    }

    /// A cgroup2 id is the inode number of its folder.
    static func id(of path: String) throws -> UInt64 {
        var info = stat()
        try #require(stat(path, &info) == 0, "stat \(path)")
        return UInt64(info.st_ino)
    }

    func start(_ binary: String, _ arguments: [String], in cgroup: String) throws -> BackgroundProcess {
        try CgroupProcess.start(in: cgroup, binary, arguments)
    }

    func remove() {
        CgroupProcess.remove([self.flood, self.steady, self.base])
    }
}

/// What the tenants' cgroups recorded over several drains.
struct Recording {
    var flood: [RawStackSample] = []
    var steady: [RawStackSample] = []
    /// Per drain: the flood's buckets with stacks (its new keys), and its over-share buckets.
    var floodKeysPerDrain: [Int] = []
    var overShareBucketsPerDrain: [Int] = []
    var drainedSamples: UInt64 = 0
    var counters = SamplerCounters()
    /// The function names of each process's user stacks, symbolized while it runs.
    var functions: [Int32: [[UInt64]: [String]]] = [:]
    let symbolizer = Symbolizer(logger: Logger(label: "test"))

    var overShareSamples: UInt64 { self.flood.filter(\.isOverTargetShare).reduce(0) { $0 + $1.count } }

    /// Samples of `pid` among `samples` whose stack goes through `function`.
    func named(_ samples: [RawStackSample], pid: Int32, _ function: String) -> UInt64 {
        samples.filter { $0.pid == pid && (self.functions[pid]?[$0.userStack] ?? []).contains(function) }
            .reduce(0) { $0 + $1.count }
    }

    func steadyNamed(_ pid: Int32) -> UInt64 {
        self.named(self.steady, pid: pid, "steady_middle")
    }

    /// Drains every 0.3 s until `done` holds, for at most `seconds`.
    static func record(
        _ sampler: CPUSampler,
        tenants: TenantCgroups,
        seconds: Double = 30,
        until done: (Recording) -> Bool
    ) throws -> Recording {
        var recording = Recording()
        let deadline = Date().addingTimeInterval(seconds)
        while !done(recording), Date() < deadline {
            Thread.sleep(forTimeInterval: 0.3)
            recording.add(try sampler.drain(), tenants: tenants, symbolize: true)
        }
        return recording
    }

    /// The last two drains, once the workloads are stopped: everything still in either set.
    mutating func finish(_ sampler: CPUSampler, tenants: TenantCgroups) throws {
        for _ in 0..<2 { self.add(try sampler.drain(), tenants: tenants, symbolize: false) }
        self.counters = try sampler.counters()
    }

    mutating func add(_ drain: SamplerDrain, tenants: TenantCgroups, symbolize: Bool) {
        let flood = drain.samples.filter { $0.cgroupID == tenants.floodID }
        let steady = drain.samples.filter { $0.cgroupID == tenants.steadyID }
        if symbolize {
            for sample in flood + steady
            where !sample.isOverTargetShare && self.functions[sample.pid]?[sample.userStack] == nil {
                self.functions[sample.pid, default: [:]][sample.userStack] = self.symbolizer.symbolizeUser(
                    pid: sample.pid,
                    addresses: sample.userStack
                ).compactMap(\.function)
            }
        }
        self.flood += flood
        self.steady += steady
        self.floodKeysPerDrain.append(flood.count { !$0.isOverTargetShare })
        self.overShareBucketsPerDrain.append(flood.count(where: \.isOverTargetShare))
        self.drainedSamples += drain.samples.reduce(0) { $0 + $1.count }
        self.counters = drain.counters
    }
}
