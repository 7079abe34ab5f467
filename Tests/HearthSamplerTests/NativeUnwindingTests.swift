// NativeUnwindingTests.swift: the .eh_frame unwinder on the real kernel against gcc-built workloads without frame
// pointers: whole call chains down to libc's start, deep recursion, the truncation marker, a callback through
// libc's qsort, and the same chain with frame-pointer unwinding (which breaks it, showing the test can fail).

import Foundation
import HearthSampler
import HearthTestSupport
import Logging
import Testing

@Suite(
    "Native unwinding on the real kernel",
    .serialized,
    .enabled(if: BPFTestSupport.enabled, BPFTestSupport.skipReason)
)
struct NativeUnwindingTests {
    static let chain = ["hot_leaf", "level3", "level2", "level1", "main"]
    static let unwinding = NativeUnwinding(rowBudget: 1 << 20, maxProcesses: 16, stacksPerInterval: 1024)

    /// The chain, leaf first and contiguous, then libc's start code (`__libc_start_call_main`, named when libc6-dbg
    /// is installed) and the executable's `_start`, where the stop row ends the walk.
    static func isWholeChain(_ stack: SymbolizedRecording.Stack) -> Bool {
        let functions = stack.functions
        guard Array(functions.prefix(Self.chain.count)) == Self.chain, stack.marker == nil,
            functions.count > Self.chain.count
        else { return false }
        let caller = functions[Self.chain.count]
        return (caller == "__libc_start_call_main" || caller.hasPrefix("libc.so.6+"))
            && functions.contains("__libc_start_main") && functions.last == "_start"
    }

    @Test("-O2 -fomit-frame-pointer: at least 95% of hot_leaf's samples show main → … → hot_leaf and libc's start")
    func chainWithoutFramePointers() throws {
        let workload = try UnwindWorkloads.start(UnwindWorkloads.withoutFramePointers, ["chain"])
        let recording = try SymbolizedRecording.record(pid: workload.pid, leaf: "hot_leaf", unwinding: Self.unwinding)
        try #require(
            recording.samples(leaf: "hot_leaf") >= 100,
            "too few samples: \(recording.examples(leaf: "hot_leaf"))"
        )
        let share = recording.share(leaf: "hot_leaf", where: Self.isWholeChain)
        print("native unwinding, -fomit-frame-pointer chain: \(share * 100)% of \(recording.samples(leaf: "hot_leaf"))")
        #expect(share >= 0.95, "whole chains: \(share)\n\(recording.examples(leaf: "hot_leaf"))")
        #expect(recording.stacks.allSatisfy { $0.source == .unwindTables })
        #expect(recording.counters.lostSamples == 0)
        #expect(recording.counters.unwoundStacksLost == 0)
    }

    @Test("the same workload with frame-pointer unwinding (unwinding off) breaks the chain")
    func chainWithFramePointerUnwinding() throws {
        let workload = try UnwindWorkloads.start(UnwindWorkloads.withoutFramePointers, ["chain"])
        let recording = try SymbolizedRecording.record(pid: workload.pid, leaf: "hot_leaf", unwinding: nil)
        try #require(recording.samples(leaf: "hot_leaf") >= 100, "too few samples")
        let share = recording.share(leaf: "hot_leaf", where: Self.isWholeChain)
        print("frame pointers, -fomit-frame-pointer chain: \(share * 100)% of \(recording.samples(leaf: "hot_leaf"))")
        #expect(share < 0.05, "frame pointers unexpectedly walked the chain: \(recording.examples(leaf: "hot_leaf"))")
        #expect(recording.stacks.allSatisfy { $0.source == .framePointers })
    }

    @Test("-fno-omit-frame-pointer, whose leaf still has no frame: at least 95% whole chains")
    func chainWithFramePointers() throws {
        let workload = try UnwindWorkloads.start(UnwindWorkloads.withFramePointers, ["chain"])
        let recording = try SymbolizedRecording.record(pid: workload.pid, leaf: "hot_leaf", unwinding: Self.unwinding)
        try #require(recording.samples(leaf: "hot_leaf") >= 100, "too few samples")
        let share = recording.share(leaf: "hot_leaf", where: Self.isWholeChain)
        print(
            "native unwinding, -fno-omit-frame-pointer chain: \(share * 100)% of \(recording.samples(leaf: "hot_leaf"))"
        )
        #expect(share >= 0.95, "whole chains: \(share)\n\(recording.examples(leaf: "hot_leaf"))")
    }

    @Test("recursion 100 deep: at least 95% of the samples have 100 frames or more")
    func recursion100() throws {
        let workload = try UnwindWorkloads.start(UnwindWorkloads.withoutFramePointers, ["recurse", "100"])
        let recording = try SymbolizedRecording.record(
            pid: workload.pid,
            leaf: "recursion_leaf",
            unwinding: Self.unwinding
        )
        try #require(recording.samples(leaf: "recursion_leaf") >= 100, "too few samples")
        let share = recording.share(leaf: "recursion_leaf") { stack in
            stack.marker == nil && stack.functions.count >= 100
                && stack.functions.prefix(101).dropFirst().allSatisfy { $0 == "recurse" }
                && stack.functions.last == "_start"
        }
        print("native unwinding, recursion 100: \(share * 100)% of \(recording.samples(leaf: "recursion_leaf"))")
        #expect(share >= 0.95, "deep stacks: \(share)\n\(recording.examples(leaf: "recursion_leaf").prefix(600))")
    }

    @Test("recursion 300 deep: the stack ends in the truncation marker, and no sample is lost")
    func recursion300() throws {
        let workload = try UnwindWorkloads.start(UnwindWorkloads.withoutFramePointers, ["recurse", "300"])
        let recording = try SymbolizedRecording.record(
            pid: workload.pid,
            leaf: "recursion_leaf",
            unwinding: Self.unwinding
        )
        try #require(recording.samples(leaf: "recursion_leaf") >= 100, "too few samples")
        let share = recording.share(leaf: "recursion_leaf") { stack in
            stack.marker == .truncated && stack.addresses.count == 129
        }
        print("native unwinding, recursion 300: \(share * 100)% truncated at 128 frames")
        #expect(share >= 0.95, "truncated: \(share)")
        #expect(recording.counters.unwindTruncated > 0)
        #expect(recording.counters.lostSamples == 0)
        #expect(recording.counters.unwoundStacksLost == 0)
        #expect(recording.stacks.allSatisfy { !$0.addresses.isEmpty })
    }

    @Test("a qsort callback: compare_keys, through libc's sort, to sorter and main")
    func qsortCallback() throws {
        let workload = try UnwindWorkloads.start(UnwindWorkloads.withoutFramePointers, ["qsort"])
        let recording = try SymbolizedRecording.record(
            pid: workload.pid,
            leaf: "compare_keys",
            unwinding: Self.unwinding
        )
        try #require(recording.samples(leaf: "compare_keys") >= 100, "too few samples")
        let share = recording.share(leaf: "compare_keys") { stack in
            guard stack.marker == nil, let sorter = stack.functions.firstIndex(of: "sorter"),
                let qsort = stack.functions.firstIndex(where: { $0.hasPrefix("qsort") })
            else { return false }
            return qsort > 1 && qsort < sorter && stack.functions[sorter + 1] == "main"
                && stack.functions.last == "_start"
        }
        print("native unwinding, qsort callback: \(share * 100)% of \(recording.samples(leaf: "compare_keys"))")
        #expect(share >= 0.95, "chains through qsort: \(share)\n\(recording.examples(leaf: "compare_keys"))")
    }

    @Test("samples taken in the kernel unwind from the user registers: write, syscall_loop, main, libc's start")
    func kernelModeSamples() throws {
        let workload = try UnwindWorkloads.start(UnwindWorkloads.withoutFramePointers, ["syscalls"])
        let recording = try SymbolizedRecording.record(pid: workload.pid, leaf: "write", unwinding: Self.unwinding)
        try #require(recording.samples(leaf: "write") >= 100, "too few samples")
        let share = recording.share(leaf: "write") { stack in
            Array(stack.functions.prefix(3)) == ["write", "syscall_loop", "main"] && stack.marker == nil
                && stack.functions.last == "_start"
        }
        let inKernel = recording.stacks.filter { $0.functions.first == "write" && $0.inKernel }.reduce(0) {
            $0 + $1.count
        }
        print(
            "native unwinding, kernel-mode samples: \(share * 100)% of \(recording.samples(leaf: "write")), \(inKernel) in the kernel"
        )
        #expect(inKernel > 0, "no sample was taken in the kernel")
        #expect(share >= 0.95, "whole chains: \(share)\n\(recording.examples(leaf: "write"))")
    }

    @Test("a hot loop in a SIGPROF handler: at least 90% continue past __restore_rt into the interrupted function")
    func signalFrames() throws {
        let workload = try UnwindWorkloads.start(UnwindWorkloads.withoutFramePointers, ["signal"])
        let recording = try SymbolizedRecording.record(
            pid: workload.pid,
            leaf: "signal_hot_loop",
            unwinding: Self.unwinding
        )
        try #require(recording.samples(leaf: "signal_hot_loop") >= 100, "too few samples")
        let share = recording.share(leaf: "signal_hot_loop") { stack in
            // signal_hot_loop, on_sigprof, __restore_rt (unnamed: its FDE starts one byte early), the interrupted
            // function and its callers.
            Array(stack.functions.prefix(2)) == ["signal_hot_loop", "on_sigprof"] && stack.functions.count > 5
                && Array(stack.functions[3...5]) == ["interrupted_work", "run_signal_handlers", "main"]
                && stack.marker == nil && stack.functions.last == "_start"
        }
        print("native unwinding, signal handler: \(share * 100)% of \(recording.samples(leaf: "signal_hot_loop"))")
        #expect(
            share >= 0.9,
            "chains through the signal frame: \(share)\n\(recording.examples(leaf: "signal_hot_loop"))"
        )
    }

    @Test("a process without tables keeps frame-pointer stacks (no sample lost) until the program's request is served")
    func tablesLoadOnFirstSample() throws {
        let workload = try UnwindWorkloads.start(UnwindWorkloads.withoutFramePointers, ["chain"])
        let sampler = try CPUSampler(
            configuration: .init(frequency: 499, pid: workload.pid, nativeUnwinding: Self.unwinding),
            logger: Logger(label: "test")
        )
        sampler.forgetUnwindTables(pid: workload.pid)
        var sawFramePointers = false
        var loads: [UnwindTableLoad] = []
        var last: SamplerDrain?
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            Thread.sleep(forTimeInterval: 0.2)
            let drain = try sampler.drain()
            sawFramePointers = sawFramePointers || drain.samples.contains { $0.userStackSource == .framePointers }
            loads += drain.unwindTableLoads
            last = drain
            if sawFramePointers, !drain.samples.isEmpty,
                drain.samples.allSatisfy({ $0.userStackSource == .unwindTables })
            {
                break
            }
        }
        let drain = try #require(last)
        #expect(sawFramePointers, "no frame-pointer stack while the process had no tables")
        #expect(!drain.samples.isEmpty && drain.samples.allSatisfy { $0.userStackSource == .unwindTables })
        #expect(drain.counters.lostSamples == 0)
        #expect(drain.samples.allSatisfy { !$0.userStack.isEmpty })
        // The background service served the program's request: the executable, libc and the loader (the vDSO has no
        // table).
        let load = try #require(loads.first { $0.pid == workload.pid }, "no load reported: \(loads)")
        #expect(!load.isReload)
        #expect(load.report.modulesLoaded >= 3, "\(load.report)")
        #expect(load.latency > .zero)
    }

    @Test("a table budget too small for two processes evicts the modules sampled least recently, never one in use")
    func evictionMakesRoom() throws {
        let processes = [
            try UnwindWorkloads.start(UnwindWorkloads.withoutFramePointers, ["chain"]),
            try UnwindWorkloads.start(UnwindWorkloads.withFramePointers, ["chain"]),
        ]
        // What each executable needs on its own (both share libc and the loader). No pid filter, so that nothing
        // is loaded before the test asks (every process is sampled; only these two get tables).
        var ownRows: [Int] = []
        for index in 0..<2 {
            let probe = try CPUSampler(
                configuration: .init(nativeUnwinding: Self.manualUnwinding(rowBudget: 1 << 20)),
                logger: Logger(label: "test")
            )
            _ = try probe.loadUnwindTables(pid: processes[1 - index].pid)
            ownRows.append(try probe.loadUnwindTables(pid: processes[index].pid).rowsWritten)
        }
        // Rows are handed out first fit, so the evicted executable's rows must be room enough for the other's.
        let (first, second) = ownRows[0] >= ownRows[1] ? (processes[0], processes[1]) : (processes[1], processes[0])
        let secondOwnRows = min(ownRows[0], ownRows[1])
        let probe = try CPUSampler(
            configuration: .init(nativeUnwinding: Self.manualUnwinding(rowBudget: 1 << 20)),
            logger: Logger(label: "test")
        )
        let firstRows = try probe.loadUnwindTables(pid: first.pid).rowsWritten
        try #require(secondOwnRows > 0 && firstRows > secondOwnRows)

        // Room for the first process's modules and a little, not for the second's executable on top.
        let budget = UInt32(firstRows + secondOwnRows / 2)
        let sampler = try CPUSampler(
            configuration: .init(
                frequency: 499,
                nativeUnwinding: Self.manualUnwinding(rowBudget: budget, evictionGrace: .seconds(1))
            ),
            logger: Logger(label: "test")
        )
        let firstLoad = try sampler.loadUnwindTables(pid: first.pid)
        #expect(firstLoad.modulesLoaded >= 3 && firstLoad.modulesOverBudget == 0, "\(firstLoad)")
        // The first goes idle (stopped) for longer than the grace period, so its executable may be evicted; the
        // second, sampled all along, keeps its modules even if the first asked for its tables again.
        #expect(kill(first.pid, SIGSTOP) == 0)
        Thread.sleep(forTimeInterval: 1.5)
        let secondLoad = try sampler.loadUnwindTables(pid: second.pid)
        // The first's executable went; libc and the loader, which the second maps too, stayed.
        #expect(secondLoad.modulesEvicted == 1, "\(secondLoad)")
        #expect(secondLoad.modulesOverBudget == 0 && secondLoad.modulesShared >= 2, "\(secondLoad)")

        // The second process, sampled from now on (what was sampled before its load had frame pointers), unwinds
        // through its tables.
        _ = try sampler.drain()
        _ = try sampler.drain()
        let recording = try SymbolizedRecording.record(sampler: sampler, pid: second.pid, leaf: "hot_leaf")
        let broken = recording.stacks.filter { $0.functions.first == "hot_leaf" && !Self.isWholeChain($0) }
        #expect(
            recording.share(leaf: "hot_leaf", where: Self.isWholeChain) >= 0.95,
            "\(broken.prefix(3).map { "\($0.count)x \($0.functions) \($0.source) \($0.marker.map { "\($0)" } ?? "")" })"
        )
    }

    /// Tables loaded only on request.
    static func manualUnwinding(rowBudget: UInt32, evictionGrace: Duration = .zero) -> NativeUnwinding {
        var unwinding = NativeUnwinding(rowBudget: rowBudget, maxProcesses: 16, stacksPerInterval: 1024)
        unwinding.loadsTablesOnFirstSample = false
        unwinding.evictionGrace = evictionGrace
        return unwinding
    }
}
