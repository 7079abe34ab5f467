// MemoryOptions.swift: the one memory figure of `profile` and `run`: what the caches of workload data may hold.

import ArgumentParser
import HearthAPI
import HearthAgent

struct MemoryOptions: ParsableArguments {
    @Option(
        name: .customLong(AgentCommandLine.Option.memoryBudgetMiB.name),
        help: """
            What the caches of workload data (symbol tables, process maps) may hold, in MiB: half for symbols, an \
            eighth for maps; a quarter bounds the largest .eh_frame compiled (read in 256 KiB pieces). The agent's \
            code and runtime come on top (32, the default, keeps a busy node's agent within 64 MiB).
            """
    )
    var memoryBudgetMib: Int = MemoryBudget.defaultMebibytes

    func validate() throws {
        try checked { try AgentCommandLine.check(memoryBudgetMiB: self.memoryBudgetMib) }
    }

    var memoryBudget: MemoryBudget { MemoryBudget(mebibytes: self.memoryBudgetMib) }
}
