// hearth-operator: `run` the operator (RunCommand.swift), `render -f FILE` a preview of what it would apply, or
// write `crds` (RenderCommand.swift). The flags' syntax and checks live in HearthOperator (OperatorFlags.swift),
// table-tested; the commands only declare them.

import ArgumentParser
import HearthAPI
import HearthOperator
import Logging

#if canImport(CMalloc)
import CMalloc
#endif

extension OperatorConfiguration.SecurityMode: ExpressibleByArgument {
    public init?(argument: String) { self.init(rawValue: argument) }
    public static var allValueStrings: [String] { ["privileged", "capabilities"] }
}

extension AgentCommandLine.UnwindMethod: ExpressibleByArgument {}
extension Logger.Level: @retroactive ExpressibleByArgument {}

@main
struct HearthOperatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hearth-operator",
        abstract: "The Hearth ProfilingTarget operator.",
        subcommands: [Run.self, Render.self, CRDs.self]
    )

    static func main() async {
        #if canImport(CMalloc)
        // One malloc arena, set before any other thread allocates: a per-thread arena keeps the memory its thread
        // freed, and the bursts of a cold start (watch events parsed on several threads) left ~3-5 MiB of free but
        // resident heap behind. Allocation is not contended enough here for more arenas to pay (BENCHMARKS.md).
        _ = CMalloc_limitArenas(1)
        #endif
        await Self.main(nil)
    }
}
