// MemoryOptions.swift: the one memory figure of `profile` and `run`: what the caches of workload data may hold.

import ArgumentParser
import HearthAgent

struct MemoryOptions: ParsableArguments {
    @Option(
        help: """
            What the caches of workload data (symbol tables, process maps) may hold, in MiB: half for symbols, an \
            eighth for maps; a quarter bounds the largest .eh_frame compiled (read in 256 KiB pieces). The agent's \
            code and runtime come on top (32, the default, keeps a busy node's agent within 64 MiB).
            """
    )
    var memoryBudgetMib: Int = MemoryBudget.defaultMebibytes

    func validate() throws {
        guard MemoryBudget.range.contains(self.memoryBudgetMib) else {
            throw ValidationError(
                """
                --memory-budget-mib \(self.memoryBudgetMib) is out of range: use \(MemoryBudget.range.lowerBound) to \
                \(MemoryBudget.range.upperBound) (\(MemoryBudget.defaultMebibytes) is the default)
                """
            )
        }
    }

    var memoryBudget: MemoryBudget { MemoryBudget(mebibytes: self.memoryBudgetMib) }
}
