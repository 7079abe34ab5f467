// CheckCommand.swift: `hearth-agent check`: runs the self-check and prints what keeps this machine or process from
// sampling with eBPF, exiting 1 when something fatal is missing.

import ArgumentParser
import HearthSampler

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check that this machine and process can sample with eBPF, and say how to fix what is missing."
    )

    func run() throws {
        let findings = SelfCheck().findings()
        for finding in findings { printError(finding.description) }
        if findings.contains(where: { $0.severity == .fatal }) { throw ExitCode(1) }
        print("ok: this process can load BPF programs and open perf events on every CPU")
    }
}
