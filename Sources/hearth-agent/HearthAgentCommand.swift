// HearthAgentCommand.swift: the `hearth-agent` entry point and its subcommands: `profile`, `check` and `run`.

import ArgumentParser

@main
struct HearthAgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hearth-agent",
        abstract: "Hearth's eBPF node agent: samples where CPU time goes, down to the function.",
        subcommands: [ProfileCommand.self, CheckCommand.self, RunCommand.self]
    )
}
