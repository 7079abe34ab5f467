// CPUSamplerTests.swift: CPUSampler on the real kernel: the pid and cgroup filters, subsampling counted as a loss,
// drains that never return a bucket twice, kernel stacks of a syscall-heavy process, and the frequency range.

import Foundation
import HearthSampler
import HearthTestSupport
import Logging
import Testing

@Suite("CPUSampler on the real kernel", .enabled(if: BPFTestSupport.enabled, BPFTestSupport.skipReason))
struct CPUSamplerTests {
    let logger = Logger(label: "test")

    /// Drains until `condition` holds for the drains so far, for at most `seconds`.
    func collect(
        _ sampler: CPUSampler,
        seconds: Double = 10,
        until condition: ([RawStackSample]) -> Bool
    ) throws -> (samples: [RawStackSample], last: SamplerDrain) {
        var samples: [RawStackSample] = []
        let deadline = Date().addingTimeInterval(seconds)
        var last = try sampler.drain()
        samples += last.samples
        while !condition(samples), Date() < deadline {
            Thread.sleep(forTimeInterval: 0.2)
            last = try sampler.drain()
            samples += last.samples
        }
        return (samples, last)
    }

    @Test("samples only the filtered process, with user stacks and a comm")
    func pidFilter() throws {
        let busy = try busyProcess()
        let sampler = try CPUSampler(configuration: .init(frequency: 199, pid: busy.pid), logger: self.logger)
        #expect(!sampler.cpus.isEmpty)
        let (samples, last) = try self.collect(sampler) { samples in samples.reduce(0) { $0 + $1.count } >= 50 }

        let total = samples.reduce(0) { $0 + $1.count }
        #expect(total >= 50)
        #expect(samples.allSatisfy { $0.pid == busy.pid })
        #expect(samples.allSatisfy { $0.comm == "sh" })
        #expect(samples.contains { !$0.userStack.isEmpty })
        // Samples recorded after the last switch of map sets are counted but not drained yet.
        #expect(last.counters.recorded >= total)
        #expect(last.counters.lostSamples == 0)
        #expect(last.counters.stacksMissingAtDrain == 0)
        #expect(last.counters.filteredByPID + last.counters.idle + last.counters.recorded <= last.counters.samples)
    }

    @Test("a drain empties the maps: buckets are never returned twice")
    func drainEmpties() throws {
        let busy = try busyProcess()
        let sampler = try CPUSampler(configuration: .init(frequency: 499, pid: busy.pid), logger: self.logger)
        var seen = 0
        var counted: UInt64 = 0
        var recorded: UInt64 = 0
        for _ in 0..<6 {
            Thread.sleep(forTimeInterval: 0.15)
            let drain = try sampler.drain()
            seen += drain.samples.count
            counted += drain.samples.reduce(0) { $0 + $1.count }
            recorded = drain.counters.recorded
        }
        #expect(seen > 0)
        // With the only sampled process gone, two more drains return everything still recorded: each sample
        // comes back exactly once over all drains.
        busy.stop()
        for _ in 0..<2 {
            let drain = try sampler.drain()
            counted += drain.samples.reduce(0) { $0 + $1.count }
        }
        let final = try sampler.counters()
        #expect(counted == final.recorded)
        #expect(recorded <= final.recorded)
    }

    @Test("the cgroup filter keeps targeted cgroups and drops the rest")
    func cgroupFilter() throws {
        let busy = try busyProcess()
        let cgroup = try cgroupID(of: busy.pid)

        let targeted = try CPUSampler(
            configuration: .init(frequency: 199, targetCgroups: [cgroup: TargetCgroup(probability: 1)]),
            logger: self.logger
        )
        let (samples, _) = try self.collect(targeted) { $0.contains { $0.pid == busy.pid } }
        #expect(samples.contains { $0.pid == busy.pid })
        #expect(samples.allSatisfy { $0.cgroupID == cgroup })

        let untargeted = try CPUSampler(configuration: .init(frequency: 199, targetCgroups: [:]), logger: self.logger)
        Thread.sleep(forTimeInterval: 0.5)
        let drain = try untargeted.drain()
        #expect(drain.samples.isEmpty)
        #expect(drain.counters.filteredByCgroup > 0)
        #expect(drain.counters.recorded == 0)
    }

    @Test("a sampling probability of zero subsamples everything, and the loss is counted")
    func subsampling() throws {
        let busy = try busyProcess()
        let cgroup = try cgroupID(of: busy.pid)
        let sampler = try CPUSampler(
            configuration: .init(frequency: 199, targetCgroups: [cgroup: TargetCgroup(probability: 0)]),
            logger: self.logger
        )
        Thread.sleep(forTimeInterval: 0.5)
        let drain = try sampler.drain()
        #expect(drain.samples.allSatisfy { $0.cgroupID != cgroup })
        #expect(drain.counters.subsampled > 0)
    }

    @Test("sampling system-wide sees kernel stacks of a syscall-heavy process")
    func kernelStacks() throws {
        // dd copying /dev/zero to /dev/null spends its time in the kernel.
        let busy = try busyProcess(shellLoop: "exec dd if=/dev/zero of=/dev/null bs=1 status=none")
        let sampler = try CPUSampler(configuration: .init(frequency: 199, pid: busy.pid), logger: self.logger)
        let (samples, _) = try self.collect(sampler) { samples in samples.contains { !$0.kernelStack.isEmpty } }
        #expect(samples.contains { !$0.kernelStack.isEmpty })
        // Kernel addresses live in the top half of the address space.
        let kernelAddresses = samples.flatMap(\.kernelStack)
        #expect(kernelAddresses.allSatisfy { $0 >= 0xffff_0000_0000_0000 })
    }

    @Test("an out-of-range frequency is refused with the valid range")
    func badFrequency() {
        #expect(throws: BPFError.self) {
            _ = try CPUSampler(configuration: .init(frequency: 0), logger: self.logger)
        }
    }
}
