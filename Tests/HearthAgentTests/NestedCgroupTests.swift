// NestedCgroupTests.swift: a targeted container that creates 5,000 nested cgroups (a CI or Docker-in-Docker pod can),
// on the real kernel: the filter map holds what it can, containers' own cgroups first, never fails, and a process in
// a cgroup the map does not hold (nested 30 deep, below the walk's depth limit) is sampled as its container.

import Foundation
import HearthSampler
import HearthTestSupport
import Logging
import Testing

@testable import HearthAgent

@Suite("Nested cgroups under a targeted container", .serialized)
struct NestedCgroupTests {
    @Test(
        "5,000 nested cgroups: the container's cgroup is kept, the rest counted, a process 30 deep sampled as it",
        .enabled(if: BPFRequirement.enabled, "needs root for eBPF and cgroup2"),
        .timeLimit(.minutes(3))
    )
    func nestedCgroupsCountAsTheirContainer() throws {
        let unified = try #require(CgroupMount.unifiedRoot(), "no cgroup2 mount")
        let base = "\(unified)/hearth-nested-\(UUID().uuidString.prefix(8))"
        let id = String(repeating: "ab", count: 32)
        let container = "\(base)/cri-containerd-\(id).scope"
        var created: [String] = []
        func makeCgroup(_ path: String) throws {
            try #require(mkdir(path, 0o755) == 0 || errno == EEXIST, "mkdir \(path): errno \(errno)")
            created.append(path)
        }
        let busy = try BackgroundProcess("/bin/sh", ["-c", "while :; do :; done"])
        defer {
            busy.stop()
            // Children before parents.
            for path in created.reversed() { rmdir(path) }
        }
        try makeCgroup(base)
        try makeCgroup(container)
        for index in 0..<4970 { try makeCgroup("\(container)/n\(index)") }
        var deepest = "\(container)/n0"
        for level in 0..<30 {
            deepest += "/d\(level)"
            try makeCgroup(deepest)
        }
        try Data("\(busy.pid)\n".utf8).write(to: URL(fileURLWithPath: deepest + "/cgroup.procs"))

        let snapshot = CgroupSnapshot.scan(root: unified)
        let containerID = try #require(ContainerID(id))
        let own = try #require(snapshot.containerCgroups[containerID])
        #expect(own.level == 2)
        let ids = try #require(snapshot.cgroups[containerID])
        #expect(ids.count > CPUSampler.targetCgroupCapacity, "\(ids.count) cgroups listed")

        let sampler = try CPUSampler(
            configuration: SamplerConfiguration(frequency: 199, targetCgroups: [:]),
            logger: Logger(label: "test")
        )
        // More cgroups than the map holds: the rest are left out and counted, never an error.
        let leftOut = try sampler.updateTargetCgroups(
            Dictionary(uniqueKeysWithValues: ids.map { ($0, TargetCgroup()) }),
            ancestorLevels: own.level...own.level,
            priority: [own.id]
        )
        #expect(leftOut == ids.count - CPUSampler.targetCgroupCapacity)

        var samples: [RawStackSample] = []
        var counters = SamplerCounters()
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline, samples.reduce(0, { $0 + $1.count }) < 50 {
            Thread.sleep(forTimeInterval: 0.3)
            let drain = try sampler.drain()
            samples += drain.samples.filter { $0.pid == busy.pid }
            counters = drain.counters
        }
        #expect(samples.reduce(0) { $0 + $1.count } >= 50, "the nested process was not sampled")
        #expect(samples.allSatisfy { $0.cgroupID == own.id }, "\(Set(samples.map(\.cgroupID)))")
        #expect(counters.ancestorCgroup > 0)
    }
}
