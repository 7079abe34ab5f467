// MemoryBudget.swift: one figure for the user-space memory the agent's caches of workload data may hold (symbol
// tables, process maps, the largest call frame information compiled), split among them, so a platform team sets
// one flag (`--memory-budget-mib`, the chart's `agent.memoryBudgetMiB`) rather than five.

import HearthAPI
import HearthSampler
import HearthSymbolizer

/// What the agent's caches of workload data may hold, in one figure, and how it is shared.
///
/// Half goes to symbol tables and demangled names (perf map tables take at most an eighth of that), an eighth to
/// processes' maps. The rest is headroom for the transient work of a drain and of compiling unwind tables: call frame
/// information is read in pieces of 256 KiB whatever a section's size (``UnwindTable/Limits``), and a quarter of the
/// budget (at least 4 MiB) bounds the largest section compiled, as the work of one file. The agent's own code, runtime and buffers come on top (about 25 MiB
/// in a release build; BENCHMARKS.md measures the whole): the default, 32 MiB, keeps a busy node's agent within
/// 64 MiB of resident memory.
public struct MemoryBudget: Sendable, Hashable {
    /// The default budget, in MiB.
    public static let defaultMebibytes = AgentMemoryBudget.defaultMebibytes
    /// The budgets accepted, in MiB.
    public static let range = AgentMemoryBudget.range

    /// The budget in MiB.
    public var mebibytes: Int

    public init(mebibytes: Int = Self.defaultMebibytes) {
        self.mebibytes = mebibytes
    }

    private var bytes: Int { self.mebibytes << 20 }

    /// Symbol tables and demangled names.
    public var symbolBytes: Int { self.bytes / 2 }
    /// Processes' memory maps.
    public var processMapBytes: Int { self.bytes / 8 }
    /// The largest `.eh_frame` (or `.debug_frame`) section compiled (read in pieces, so this bounds the work of one
    /// file and the rows it can claim, not what is held at once); a larger one is unwound with frame pointers.
    public var callFrameSectionBytes: Int { max(4 << 20, self.bytes / 4) }

    /// The symbolizer's configuration within this budget.
    public var symbolizer: Symbolizer.Configuration {
        var configuration = Symbolizer.Configuration()
        configuration.maxSymbolBytes = self.symbolBytes
        configuration.maxProcessBytes = self.processMapBytes
        return configuration
    }

    /// `unwinding` with its section limit within this budget.
    public func limiting(_ unwinding: NativeUnwinding?) -> NativeUnwinding? {
        guard var unwinding else { return nil }
        unwinding.maximumSectionBytes = self.callFrameSectionBytes
        return unwinding
    }
}
