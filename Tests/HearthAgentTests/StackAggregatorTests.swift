// StackAggregatorTests.swift: stacks are symbolized once, kept across one upload interval, and forgotten when
// no interval uses them or their process is gone.

import Foundation
import HearthProfile
import HearthSymbolizer
import Logging
import Testing

@testable import HearthAgent
@testable import HearthSampler

@Suite("Stack aggregator")
struct StackAggregatorTests {
    /// A sample of this test process: its addresses name nothing, which is all the counting needs.
    func sample(_ user: [UInt64], count: UInt64 = 1, pid: Int32 = getpid()) -> RawStackSample {
        RawStackSample(
            pid: pid,
            tid: pid,
            cgroupID: 1,
            comm: "test",
            userStack: user,
            kernelStack: [],
            count: count
        )
    }

    @Test("a stack seen again in the next interval is reused, not symbolized again; counts start over")
    func reuseAcrossIntervals() {
        var aggregator = StackAggregator<String>(symbolizer: Symbolizer(logger: Logger(label: "test")))
        aggregator.add(self.sample([0x10, 0x20], count: 3), to: "a")
        aggregator.add(self.sample([0x10, 0x20], count: 2), to: "a")
        aggregator.add(self.sample([0x30]), to: "a")
        // Two user stacks and the one empty kernel stack.
        #expect(aggregator.stacksSymbolized == 3)
        let first = (aggregator.samplesByGroup()["a"] ?? [])
        #expect(first.map(\.count).sorted() == [1, 5])

        aggregator.resetCounts()
        #expect((aggregator.samplesByGroup()["a"] ?? []).isEmpty)
        aggregator.add(self.sample([0x10, 0x20], count: 4), to: "a")
        #expect(aggregator.stacksSymbolized == 3)
        #expect(aggregator.stacksReused == 2)
        let second = (aggregator.samplesByGroup()["a"] ?? [])
        #expect(second.map(\.count) == [4])
        #expect(second.first?.frames == first.first { $0.count == 5 }?.frames)
    }

    @Test("an unwound stack's marker frame is named, not looked up: [truncated], [unwind error: …]")
    func markerFramesNamed() {
        var aggregator = StackAggregator<String>(symbolizer: Symbolizer(logger: Logger(label: "test")))
        aggregator.add(self.sample([0x10, 0x20, 0xffff_ffff_ffff_ff01]), to: "a")
        aggregator.add(self.sample([0x10, 0xffff_ffff_ffff_ff13]), to: "a")
        let functions = (aggregator.samplesByGroup()["a"] ?? []).map { $0.frames.map(\.function) }
        #expect(functions.contains { $0.count == 3 && $0.last == "[truncated]" })
        #expect(functions.contains { $0.count == 2 && $0.last == "[unwind error: bad frame pointer]" })
    }

    @Test("samples past their target's share are one named frame in their group, nothing symbolized or unwound")
    func overTargetShare() {
        var aggregator = StackAggregator<String>(symbolizer: Symbolizer(logger: Logger(label: "test")))
        var overShare = RawStackSample(
            pid: 0,
            tid: 0,
            cgroupID: 7,
            comm: "",
            userStack: [],
            kernelStack: [],
            count: 40
        )
        overShare.isOverTargetShare = true
        aggregator.add(overShare, to: "flood")
        aggregator.add(overShare, to: "flood")
        aggregator.add(self.sample([0x10], count: 3), to: "steady")
        let flood = aggregator.samplesByGroup()["flood"] ?? []
        #expect(flood.map(\.count) == [80])
        #expect(flood.first?.frames.map(\.function) == ["[over this target's stack share]"])
        #expect(aggregator.totalSamples == 83)
        // Not a frame that failed to be named, nor a stack that was cut short: only the steady stack is counted.
        #expect(aggregator.userFramesNamed + aggregator.userFramesUnnamed == 3)
        #expect(aggregator.takeUnwindQuality().samples == 3)
        #expect(aggregator.processCount == 1)

        // A new interval gets the frame again.
        aggregator.resetCounts()
        aggregator.add(overShare, to: "flood")
        #expect(
            aggregator.samplesByGroup()["flood"]?.first?.frames.map(\.function) == ["[over this target's stack share]"]
        )
    }

    @Test("a stack no interval used is forgotten: it is symbolized again when it comes back")
    func forgottenAfterAnIdleInterval() {
        var aggregator = StackAggregator<String>(symbolizer: Symbolizer(logger: Logger(label: "test")))
        aggregator.add(self.sample([0x10]), to: "a")
        aggregator.resetCounts()
        aggregator.add(self.sample([0x40]), to: "a")
        aggregator.resetCounts()
        let symbolizedBefore = aggregator.stacksSymbolized
        aggregator.add(self.sample([0x10]), to: "a")
        #expect(aggregator.stacksSymbolized == symbolizedBefore + 1)
    }

    @Test("the stacks of a process that exited are not reused for a new process with its pid")
    func exitedProcessForgotten() throws {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/true")
        try child.run()
        child.waitUntilExit()
        let gone = child.processIdentifier
        var aggregator = StackAggregator<String>(symbolizer: Symbolizer(logger: Logger(label: "test")))
        aggregator.add(self.sample([0x10], pid: gone), to: "a")
        aggregator.resetCounts()
        aggregator.forgetExitedProcesses()
        let symbolizedBefore = aggregator.stacksSymbolized
        aggregator.add(self.sample([0x10], pid: gone), to: "a")
        #expect(aggregator.stacksSymbolized == symbolizedBefore + 1)
        // Only the kernel stack (the same in every process) was reused.
        #expect(aggregator.stacksReused == 1)
    }
}
