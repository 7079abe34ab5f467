// HearthAgentCommand.swift: the `hearth-agent` entry point and its subcommands: `profile`, `check` and `run`.

import ArgumentParser

#if canImport(CMalloc)
import CMalloc
#endif

@main
struct HearthAgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hearth-agent",
        abstract: "Hearth's eBPF node agent: samples where CPU time goes, down to the function.",
        subcommands: [ProfileCommand.self, CheckCommand.self, RunCommand.self]
    )

    static func main() async {
        #if canImport(CMalloc)
        // One malloc arena, set before any other thread allocates: per-thread arenas keep the memory their
        // threads freed (the operator measured ~5 MiB of it), and the agent's allocations are not contended.
        _ = CMalloc_limitArenas(1)
        #endif
        await Self.main(nil)
    }
}
