// Summary.swift: the result of a `hearth-agent profile` recording, as JSON for `--summary-json` and as the text
// printed at the end (top functions, samples, symbolization, losses).

import Foundation
import HearthAgent
import HearthBase
import HearthProfile
import HearthSampler
import HearthSymbolizer

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
    var unwind: Unwind
    /// What workloads made the profiler refuse or cut short (README, "Hostile input").
    var hostileInput: HostileInput

    struct HostileInput: Codable {
        /// FIFOs, sockets, devices and directories named as binaries, debug files or perf maps: never read.
        var refusedFiles: Int
        /// Perf maps and process maps cut at their limits.
        var truncatedInputs: Int
        /// Files whose call frame information went past a limit (size, sparse, duplicate FDEs, rows).
        var unwindFilesOverLimits: Int
        /// File opens and reads that did not return in time (a hung network or FUSE mount), or were refused because
        /// an earlier one on the same device had not.
        var stalledFileOperations: Int
    }

    /// How user stacks were walked and how well.
    struct Unwind: Codable {
        /// `eh-frame` or `frame-pointers`.
        var method: String
        /// Stacks that reached a known root (`_start`, a thread's start), over all samples with a user stack.
        var rootedShare: Double
        /// Per module of the leaf frame.
        var modules: [ModuleQuality]
        var tableLoads: [TableLoad]
        /// Walks that ended in the truncation or an error marker, and frame-pointer steps taken without a table.
        var truncated: UInt64
        var failed: UInt64
        var framePointerSteps: UInt64
    }

    struct ModuleQuality: Codable {
        var module: String
        var samples: Int64
        var rootedShare: Double
        var shortStacksEndIn: [String: Int64]
    }

    struct TableLoad: Codable {
        var pid: Int32
        var reload: Bool
        /// Modules compiled for this load, and modules other processes had loaded already.
        var modules: Int
        var modulesShared: Int
        var modulesEvicted: Int
        var modulesOverBudget: Int
        var rows: Int
        /// From the sample that asked to the tables being in the kernel.
        var millisecondsFromFirstSample: Double
    }

    init(report: LocalProfiler.Report, output: String, unwindMethod: String) {
        let profile = report.profile
        var byPID: [String: Int64] = [:]
        for sample in profile.samples { byPID[sample.labels["pid"] ?? "?", default: 0] += sample.count }
        self.output = output
        self.durationSeconds = profile.duration.seconds
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
        self.hostileInput = HostileInput(
            refusedFiles: report.symbolizerStatistics.refusedFiles,
            truncatedInputs: report.symbolizerStatistics.truncatedInputs,
            unwindFilesOverLimits: report.unwindTableLoads.reduce(0) { $0 + $1.report.filesOverLimits },
            stalledFileOperations: report.stalledFileOperations
        )
        let quality = report.unwindQuality
        self.unwind = Unwind(
            method: unwindMethod,
            rootedShare: quality.samples == 0 ? 1 : Double(quality.rooted) / Double(quality.samples),
            modules: quality.bySamples.map {
                ModuleQuality(
                    module: $0.name,
                    samples: $0.module.samples,
                    rootedShare: $0.module.rootedShare,
                    shortStacksEndIn: $0.module.shortStacksEndIn
                )
            },
            tableLoads: report.unwindTableLoads.map { load in
                TableLoad(
                    pid: load.pid,
                    reload: load.isReload,
                    modules: load.report.modulesLoaded,
                    modulesShared: load.report.modulesShared,
                    modulesEvicted: load.report.modulesEvicted,
                    modulesOverBudget: load.report.modulesOverBudget,
                    rows: load.report.rowsWritten,
                    millisecondsFromFirstSample: load.latency.seconds * 1000
                )
            },
            truncated: report.counters.unwindTruncated,
            failed: report.counters.unwindFailed,
            framePointerSteps: report.counters.unwindFramePointerSteps
        )
    }

    func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }
}

/// The human-readable result printed at the end of `hearth-agent profile`.
enum SummaryText {
    /// The share of stacks reaching a root, and the modules where they do not, most sampled first.
    static func unwindLines(_ quality: UnwindQuality, modules limit: Int = 5) -> [String] {
        guard quality.samples > 0 else { return [] }
        var lines = [
            String(
                format: "Whole stacks:   %.1f%% reach _start or a thread's start",
                Double(quality.rooted) * 100 / Double(quality.samples)
            )
        ]
        let short = quality.bySamples.filter { $0.module.rooted < $0.module.samples }.prefix(limit)
        for (name, module) in short {
            let reason = module.shortStacksEndIn.max { ($0.value, $1.key) < ($1.value, $0.key) }?.key ?? "?"
            lines.append(
                String(
                    format: "                %.1f%% in %@ (%@ samples; most short stacks: %@)",
                    module.rootedShare * 100,
                    name,
                    groupDigits(module.samples),
                    reason
                )
            )
        }
        return lines
    }

    static func render(report: LocalProfiler.Report, top: Int, output: String) -> String {
        let profile = report.profile
        var lines: [String] = []
        lines.append(TopFunctions.renderTable(TopFunctions.compute(profile, limit: top)))
        let seconds = profile.duration.seconds
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
        lines.append(contentsOf: Self.unwindLines(report.unwindQuality))
        lines.append("Wrote:          \(output)")
        return lines.joined(separator: "\n")
    }
}
