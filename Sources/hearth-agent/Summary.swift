// Summary.swift: the result of a `hearth-agent profile` recording, as JSON for `--summary-json` and as the text
// printed at the end (top functions, samples, symbolization, losses).

import Foundation
import HearthAgent
import HearthProfile
import HearthSampler

/// The machine-readable result of a recording (`--summary-json`).
struct Summary: Codable {
    var output: String
    var durationSeconds: Double
    var frequency: Int
    var samples: Int64
    var uniqueStacks: Int
    var processes: Int
    var samplesByPID: [String: Int64]
    var userFramesNamed: Int64
    var userFramesUnnamed: Int64
    var userSymbolizationRate: Double
    var kernelFramesNamed: Int64
    var kernelFramesUnnamed: Int64
    var lostSamples: UInt64
    var lostStacks: UInt64
    var programRuns: UInt64
    var idleSamples: UInt64
    var stoppedEarly: Bool

    init(report: LocalProfiler.Report, output: String) {
        let profile = report.profile
        var byPID: [String: Int64] = [:]
        for sample in profile.samples { byPID[sample.labels["pid"] ?? "?", default: 0] += sample.count }
        self.output = output
        self.durationSeconds =
            Double(profile.duration.components.seconds)
            + Double(profile.duration.components.attoseconds) / 1e18
        self.frequency = profile.frequency
        self.samples = profile.totalSamples
        self.uniqueStacks = profile.uniqueStackCount
        self.processes = report.processes
        self.samplesByPID = byPID
        self.userFramesNamed = report.userFramesNamed
        self.userFramesUnnamed = report.userFramesUnnamed
        self.userSymbolizationRate = report.userSymbolizationRate
        self.kernelFramesNamed = report.kernelFramesNamed
        self.kernelFramesUnnamed = report.kernelFramesUnnamed
        self.lostSamples = report.counters.lostSamples
        self.lostStacks = report.counters.lostStacks
        self.programRuns = report.counters.samples
        self.idleSamples = report.counters.idle
        self.stoppedEarly = report.stoppedEarly
    }

    func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }
}

/// The human-readable result printed at the end of `hearth-agent profile`.
enum SummaryText {
    static func render(report: LocalProfiler.Report, top: Int, output: String) -> String {
        let profile = report.profile
        var lines: [String] = []
        lines.append(TopFunctions.renderTable(TopFunctions.compute(profile, limit: top)))
        let seconds =
            Double(profile.duration.components.seconds) + Double(profile.duration.components.attoseconds) / 1e18
        lines.append(
            String(
                format: "Samples:        %@ in %.1f s at %d Hz, %d processes, %d unique stacks%@",
                groupDigits(profile.totalSamples),
                seconds,
                profile.frequency,
                report.processes,
                profile.uniqueStackCount,
                report.stoppedEarly ? " (stopped early)" : ""
            )
        )
        let userTotal = report.userFramesNamed + report.userFramesUnnamed
        let kernelTotal = report.kernelFramesNamed + report.kernelFramesUnnamed
        // Typed: a bare 100 beside a Double would be passed to %f as an Int.
        let kernelRate: Double = kernelTotal == 0 ? 100 : Double(report.kernelFramesNamed) * 100 / Double(kernelTotal)
        lines.append(
            String(
                format: "Symbolized:     %.1f%% of user frames (%@ of %@), %.1f%% of kernel frames",
                report.userSymbolizationRate * 100,
                groupDigits(report.userFramesNamed),
                groupDigits(userTotal),
                kernelRate
            )
        )
        let counters = report.counters
        lines.append(
            "Lost:           \(counters.lostSamples) samples, \(counters.lostStacks) stacks "
                + "(map full \(counters.countsMapFull), stack errors \(counters.userStackErrors + counters.kernelStackErrors), "
                + "collisions \(counters.stackCollisions))"
        )
        if profile.totalSamples == 0 {
            lines.append(
                "Note:           no samples: the CPUs ran only the idle task (or the --pid process never ran); "
                    + "\(counters.idle) idle samples were seen"
            )
        }
        lines.append("Wrote:          \(output)")
        return lines.joined(separator: "\n")
    }
}
