// ProfileCommand.swift: `hearth-agent profile`: records this machine (or one process) with LocalProfiler and writes
// a flame graph, folded stacks or pprof, chosen by the output file's extension; Ctrl-C stops early and still
// writes. Options are checked before recording. Also helpers the commands share (printError, formatSeconds).

import ArgumentParser
import Foundation
import HearthAPI
import HearthAgent
import HearthProfile
import HearthSampler
import Logging
import Synchronization

/// Set by SIGINT/SIGTERM: the recording stops early and the profile is still written.
private let stopRequested = Atomic<Bool>(false)

struct ProfileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile",
        abstract: "Profile this machine (or one process) and write a flame graph or profile.",
        discussion: """
            The output format follows the file extension: .html (interactive flame graph), .svg (flame graph), \
            .folded (folded stacks for flamegraph.pl and speedscope), .pb.gz or .pb (pprof, for go tool pprof \
            and Grafana Pyroscope). Needs root, or CAP_BPF and CAP_PERFMON. Ctrl-C stops early and still writes.
            """
    )

    @Option(help: "How long to record, in seconds.")
    var seconds: Double = 10

    @Option(help: "Samples per second on each CPU.")
    var frequency: Int = 99

    @Option(help: "Only profile this process id (default: every process).")
    var pid: Int32?

    @Option(name: [.short, .long], help: "Where to write: .html, .svg, .folded, .pb.gz or .pb.")
    var output: String = "flamegraph.html"

    @Option(help: "Also write a JSON summary (samples, losses, symbolization) to this file.")
    var summaryJSON: String?

    @Option(help: "Rows in the top-functions table.")
    var top: Int = 15

    @OptionGroup var unwinding: UnwindOptions
    @OptionGroup var memory: MemoryOptions

    @Flag(help: "Log libbpf and symbolizer details to standard error.")
    var verbose = false

    func validate() throws {
        guard self.seconds > 0, self.seconds <= 86_400 else {
            throw ValidationError("--seconds must be between 0 and 86400, got \(self.seconds)")
        }
        guard (1...10_000).contains(self.frequency) else {
            throw ValidationError("--frequency must be between 1 and 10000 Hz (99 is typical), got \(self.frequency)")
        }
        if let pid = self.pid, pid <= 0 || kill(pid, 0) != 0 && errno == ESRCH {
            throw ValidationError("--pid \(pid): no such process")
        }
        _ = try OutputFormat(path: self.output)
        try checkWritable(self.output, option: "--output")
        if let summary = self.summaryJSON { try checkWritable(summary, option: "--summary-json") }
    }

    func run() throws {
        var logger = Logger(label: "hearth-agent") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = self.verbose ? .debug : .error

        let findings = SelfCheck().findings()
        for finding in findings { printError(finding.description) }
        if findings.contains(where: { $0.severity == .fatal }) {
            printError("hearth-agent cannot sample on this machine: fix the errors above and run again.")
            throw ExitCode(2)
        }

        let format = try OutputFormat(path: self.output)
        installStopHandlers()
        var options = LocalProfiler.Options(
            duration: .milliseconds(Int64(self.seconds * 1000)),
            frequency: self.frequency,
            pid: self.pid,
            nativeUnwinding: self.unwinding.nativeUnwinding
        )
        options.memoryBudget = self.memory.memoryBudget
        let profiler = LocalProfiler(options: options, logger: logger)
        let progressLine = ProgressLine()
        let target = self.pid.map { "process \($0)" } ?? "every CPU"
        printError(
            "Sampling \(target) at \(self.frequency) Hz for \(formatSeconds(self.seconds)) s (Ctrl-C to stop early)"
        )
        let report: LocalProfiler.Report
        do {
            report = try profiler.record(
                progress: { progressLine.update($0) },
                shouldStop: { stopRequested.load(ordering: .relaxed) }
            )
        } catch let error as BPFError {
            progressLine.finish()
            printError("error: \(error)")
            throw ExitCode(1)
        }
        progressLine.finish()

        let bytes = try format.render(report.profile, title: "hearth-agent profile: \(target)")
        try writeAtomically(bytes, to: self.output)
        if let summary = self.summaryJSON {
            try writeAtomically(
                Array(
                    try Summary(report: report, output: self.output, unwindMethod: self.unwinding.unwind.rawValue)
                        .json()
                ),
                to: summary
            )
        }
        print(SummaryText.render(report: report, top: self.top, output: self.output))
    }
}

/// The output formats, chosen by file extension.
enum OutputFormat: Equatable {
    case html, svg, folded, pprofGzipped, pprof

    static let help = ".html, .svg, .folded, .pb.gz or .pb"

    init(path: String) throws {
        let lower = path.lowercased()
        if lower.hasSuffix(".html") || lower.hasSuffix(".htm") {
            self = .html
        } else if lower.hasSuffix(".svg") {
            self = .svg
        } else if lower.hasSuffix(".folded") || lower.hasSuffix(".txt") {
            self = .folded
        } else if lower.hasSuffix(".pb.gz") || lower.hasSuffix(".pprof") {
            self = .pprofGzipped
        } else if lower.hasSuffix(".pb") {
            self = .pprof
        } else {
            throw ValidationError("--output \(path): unknown format; use a file name ending in \(Self.help)")
        }
    }

    func render(_ profile: CPUProfile, title: String) throws -> [UInt8] {
        switch self {
        case .html: return Array(FlameGraph.html(profile, title: title).utf8)
        case .svg: return Array(FlameGraph.svg(profile, title: title).utf8)
        case .folded: return Array(FoldedStacks.render(profile).utf8)
        case .pprofGzipped: return try PprofEncoder.encodeGzipped(profile)
        case .pprof: return try PprofEncoder.encode(profile)
        }
    }
}

/// Fails before recording, not after, when a result could not be saved.
private func checkWritable(_ path: String, option: String) throws {
    let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
        throw ValidationError("\(option) \(path): the directory \(directory) does not exist")
    }
    guard access(directory, W_OK) == 0 else {
        throw ValidationError("\(option) \(path): the directory \(directory) is not writable")
    }
}

/// Writes through a temporary file and a rename, so a failed write never leaves half a file.
private func writeAtomically(_ bytes: [UInt8], to path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
}

private func installStopHandlers() {
    for signalNumber in [SIGINT, SIGTERM] {
        signal(signalNumber) { _ in stopRequested.store(true, ordering: .relaxed) }
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

func formatSeconds(_ seconds: Double) -> String {
    seconds == seconds.rounded() ? String(Int(seconds)) : String(format: "%.1f", seconds)
}
