// AgentMemoryBudget.swift: the agent's `--memory-budget-mib`, as both sides of the operator→agent contract see it:
// the agent parses and splits it, the operator validates `--agent-memory-budget-mib` and renders it (both through
// ``AgentCommandLine``).

/// The agent's one memory figure: what its caches of workload data may hold, in MiB.
public enum AgentMemoryBudget {
    /// The default, which keeps a busy node's agent within 64 MiB of resident memory (BENCHMARKS.md).
    public static let defaultMebibytes = 32
    /// The values accepted.
    public static let range = 8...4096
}
