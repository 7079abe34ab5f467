// MemoryBudgetSplitTests.swift: the agent's one memory figure and how it is shared among its caches.

import HearthAPI
import HearthSampler
import HearthSymbolizer
import Testing

@testable import HearthAgent

@Suite("Agent memory budget")
struct MemoryBudgetSplitTests {
    @Test("the default splits 32 MiB: 16 for symbols, 4 for process maps, 8 for the largest CFI section compiled")
    func defaultSplit() {
        let budget = MemoryBudget()
        #expect(budget.mebibytes == AgentMemoryBudget.defaultMebibytes && budget.mebibytes == 32)
        #expect(budget.symbolizer.maxSymbolBytes == 16 << 20)
        #expect(budget.symbolizer.maxProcessBytes == 4 << 20)
        #expect(budget.limiting(NativeUnwinding())?.maximumSectionBytes == 8 << 20)
        // Frame pointers: nothing to limit.
        #expect(budget.limiting(nil) == nil)
    }

    @Test("a small budget keeps a 4 MiB floor for CFI (libc's .eh_frame must still load); a large one scales")
    func scaling() {
        let small = MemoryBudget(mebibytes: 8)
        #expect(small.symbolBytes == 4 << 20 && small.processMapBytes == 1 << 20)
        #expect(small.callFrameSectionBytes == 4 << 20)
        let large = MemoryBudget(mebibytes: 256)
        #expect(large.symbolBytes == 128 << 20 && large.callFrameSectionBytes == 64 << 20)
        // The rest of the unwinding settings are kept.
        var unwinding = NativeUnwinding()
        unwinding.maxProcesses = 17
        #expect(large.limiting(unwinding)?.maxProcesses == 17)
    }
}
