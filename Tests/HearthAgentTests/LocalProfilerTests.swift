// LocalProfilerTests.swift: LocalProfiler on the real kernel: workloads with known call chains (a C chain, a Swift
// hot function, a syscall loop) come back named, demangled and in order, with kernel frames on top.

import Foundation
import HearthAgent
import HearthProfile
import HearthSampler
import HearthTestSupport
import Logging
import Testing

/// End to end on the real kernel: sample workloads whose call chains are known and check what comes out.
@Suite(
    "LocalProfiler on the real kernel",
    .enabled(if: BPFRequirement.enabled, "needs root for eBPF (HEARTH_REQUIRE_BPF=1 makes this a failure)")
)
struct LocalProfilerTests {
    func record(pid: Int32, seconds: Int = 3) throws -> LocalProfiler.Report {
        let profiler = LocalProfiler(
            options: .init(duration: .seconds(seconds), frequency: 199, pid: pid, drainInterval: .milliseconds(500)),
            logger: Logger(label: "test")
        )
        let report = try profiler.record()
        try #require(report.profile.totalSamples >= 50, "too few samples to judge: \(report.profile.totalSamples)")
        return report
    }

    @Test("C chain: hot_leaf holds at least 90% of the samples, under middle and main")
    func cChain() throws {
        let workload = try Workloads.chain("spin")
        let report = try self.record(pid: workload.pid)
        let profile = report.profile

        #expect(profile.samples.allSatisfy { $0.labels["pid"] == "\(workload.pid)" })
        let inHotLeaf = profile.samples.filter { $0.frames.first?.function == "hot_leaf" }.reduce(0) { $0 + $1.count }
        let share = Double(inHotLeaf) / Double(profile.totalSamples)
        #expect(share >= 0.9, "hot_leaf share \(share)")

        // The whole chain, leaf first, in order.
        let chains = profile.samples.map { $0.frames.map(\.function) }
        #expect(chains.contains { Array($0.prefix(3)) == ["hot_leaf", "middle", "main"] })
        #expect(report.userSymbolizationRate >= 0.99, "user frames named: \(report.userSymbolizationRate)")
        #expect(report.counters.lostSamples == 0)
    }

    @Test("Swift: the hot function is named, demangled")
    func swiftWorkload() throws {
        let workload = try Workloads.swiftWorkload()
        let report = try self.record(pid: workload.pid)
        let functions = report.profile.samples.flatMap { $0.frames.map(\.function) }
        let hot = functions.first { $0.contains("SwiftWorkload.spinHotFunction(rounds:") }
        #expect(hot != nil, "functions seen: \(Set(functions).sorted().prefix(20))")
        #expect(!functions.contains { $0.hasPrefix("$s") }, "a Swift symbol was left mangled")
        // Inclusive: in a debug build the integer operators it calls can be functions of their own.
        let share =
            Double(
                report.profile.samples.filter { $0.frames.contains { $0.function.contains("spinHotFunction") } }
                    .reduce(0) { $0 + $1.count }
            ) / Double(report.profile.totalSamples)
        #expect(share >= 0.9, "spinHotFunction share \(share)")
        #expect(report.userSymbolizationRate >= 0.99, "user frames named: \(report.userSymbolizationRate)")
    }

    @Test("a syscall-heavy workload shows named kernel frames on top of its user stack")
    func kernelFrames() throws {
        let workload = try Workloads.chain("syscalls")
        let report = try self.record(pid: workload.pid)
        let samples = report.profile.samples
        let withKernel = samples.filter { $0.frames.first?.isKernel == true }
        #expect(!withKernel.isEmpty)
        #expect(report.kernelFramesNamed > 0)
        // The kernel's write path on top of libc's write() and the program's main. (libc's write() keeps no frame
        // pointer, so frame-pointer unwinding skips its caller, syscall_loop: a known limit of the method.)
        let writes = withKernel.filter { sample in
            sample.frames.contains { $0.isKernel && $0.function == "ksys_write" }
                && sample.frames.contains { !$0.isKernel && $0.function == "write" }
                && sample.frames.contains { !$0.isKernel && $0.function == "main" }
        }
        #expect(!writes.isEmpty, "kernel stacks: \(withKernel.prefix(3).map { $0.frames.map(\.function) })")
        // Kernel frames come first (leaf side), user frames after them.
        for sample in withKernel {
            let firstUser = sample.frames.firstIndex { !$0.isKernel } ?? sample.frames.count
            #expect(sample.frames[firstUser...].allSatisfy { !$0.isKernel })
        }
    }
}
