// Workloads.swift: the processes the profiling tests sample: `Fixtures/chain.c`, compiled without inlining once per
// test process (with frame pointers, and as distributions build it, without), and the `hearth-workload-swift`
// executable.

import Foundation
import HearthTestSupport
import Testing

/// Workloads with known call chains.
enum Workloads {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// `Fixtures/chain.c` built with frame pointers and without inlining, once per test process.
    static let chainBinary: Result<String, any Error> = Result {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hearth-chain-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let binary = directory.appendingPathComponent("chain").path
        let output = try ChildProcess.run(
            "/usr/bin/cc",
            [
                "-O0", "-g", "-fno-omit-frame-pointer", "-fno-inline", "-o", binary,
                fixtures.appendingPathComponent("chain.c").path,
            ]
        )
        guard output.status == 0 else { throw CompileError(message: output.stderr) }
        return binary
    }

    /// `Fixtures/chain.c` built as distributions build: `-O2` without frame pointers (`.eh_frame` only).
    static let chainWithoutFramePointers: Result<String, any Error> = Result {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hearth-chain-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let binary = directory.appendingPathComponent("chain-omit-fp").path
        let output = try ChildProcess.run(
            "/usr/bin/cc",
            [
                "-O2", "-g", "-fomit-frame-pointer", "-fno-inline", "-o", binary,
                fixtures.appendingPathComponent("chain.c").path,
            ]
        )
        guard output.status == 0 else { throw CompileError(message: output.stderr) }
        return binary
    }

    struct CompileError: Error, CustomStringConvertible {
        var message: String
        var description: String { "cc failed: \(self.message)" }
    }

    static func chain(_ mode: String) throws -> BackgroundProcess {
        try BackgroundProcess(try self.chainBinary.get(), [mode])
    }

    static func swiftWorkload() throws -> BackgroundProcess {
        let binary = BuildProducts.executable("hearth-workload-swift")
        try #require(FileManager.default.isExecutableFile(atPath: binary), "build the package first: \(binary)")
        return try BackgroundProcess(binary)
    }
}
