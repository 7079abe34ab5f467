// UnwindWorkloads.swift: `Fixtures/unwind_workload.c` built with gcc (without frame pointers, and once with them),
// started and awaited until libc is mapped, and the sampling and symbolizing the unwinder tests share.

import Foundation
import HearthSampler
import HearthSymbolizer
import HearthTestSupport
import Logging
import Testing

enum UnwindWorkloads {
    static let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/unwind_workload.c").path

    /// Built once per test process: `-O2 -g` without frame pointers (the distribution default).
    static let withoutFramePointers = Result { try build(name: "omit-fp", flags: ["-fomit-frame-pointer"]) }
    /// Built once per test process: frame pointers kept, yet gcc gives the leaf no frame.
    static let withFramePointers = Result { try build(name: "keep-fp", flags: ["-fno-omit-frame-pointer"]) }

    struct CompileError: Error, CustomStringConvertible {
        var message: String
        var description: String { "gcc failed: \(self.message)" }
    }

    static func build(name: String, flags: [String]) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hearth-unwind-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let binary = directory.appendingPathComponent("unwind-\(name)").path
        let output = try ChildProcess.run("/usr/bin/gcc", ["-O2", "-g"] + flags + ["-o", binary, self.source])
        guard output.status == 0 else { throw CompileError(message: output.stderr) }
        return binary
    }

    /// Starts the workload and waits (up to 10 s) until the dynamic linker has mapped libc, so the mapping table
    /// the sampler reads at start holds every module.
    static func start(_ binary: Result<String, any Error>, _ arguments: [String]) throws -> BackgroundProcess {
        let process = try BackgroundProcess(try binary.get(), arguments)
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let maps = (try? String(contentsOfFile: "/proc/\(process.pid)/maps", encoding: .utf8)) ?? ""
            if maps.contains("libc.so.6") { return process }
            Thread.sleep(forTimeInterval: 0.01)
        }
        Issue.record("libc never appeared in the maps of \(process.pid)")
        return process
    }
}

/// One recording of a workload: its samples symbolized, leaf first.
struct SymbolizedRecording {
    struct Stack {
        var functions: [String]
        var addresses: [UInt64]
        var marker: StackMarker?
        var source: UserStackSource
        var count: UInt64
        /// Whether the sample was taken in the kernel (it has a kernel stack).
        var inKernel: Bool
    }

    var stacks: [Stack] = []
    var counters = SamplerCounters()

    /// Samples the process until `samples` samples have `leaf` as their first frame, for at most `seconds`.
    static func record(
        pid: Int32,
        leaf: String,
        samples: UInt64 = 200,
        unwinding: NativeUnwinding?,
        seconds: Double = 30
    ) throws -> SymbolizedRecording {
        let sampler = try CPUSampler(
            configuration: .init(frequency: 499, pid: pid, nativeUnwinding: unwinding),
            logger: Logger(label: "test")
        )
        return try self.record(sampler: sampler, pid: pid, leaf: leaf, samples: samples, seconds: seconds)
    }

    /// Drains `sampler` until `samples` samples of `pid` have `leaf` as their first frame, for at most `seconds`.
    static func record(
        sampler: CPUSampler,
        pid: Int32,
        leaf: String,
        samples: UInt64 = 200,
        seconds: Double = 30
    ) throws -> SymbolizedRecording {
        let symbolizer = Symbolizer(logger: Logger(label: "test"))
        var recording = SymbolizedRecording()
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            Thread.sleep(forTimeInterval: 0.25)
            let drain = try sampler.drain()
            recording.counters = drain.counters
            for sample in drain.samples where sample.pid == pid && !sample.userStack.isEmpty {
                let marker = sample.userStack.last.flatMap(StackMarker.init(address:))
                let addresses = marker == nil ? sample.userStack : Array(sample.userStack.dropLast())
                let functions = symbolizer.symbolizeUser(pid: pid, addresses: addresses).map(\.displayName)
                recording.stacks.append(
                    Stack(
                        functions: functions,
                        addresses: sample.userStack,
                        marker: marker,
                        source: sample.userStackSource,
                        count: sample.count,
                        inKernel: !sample.kernelStack.isEmpty
                    )
                )
            }
        } while recording.samples(leaf: leaf) < samples && Date() < deadline
        return recording
    }

    /// Samples whose leaf frame is `leaf`.
    func samples(leaf: String) -> UInt64 {
        self.stacks.filter { $0.functions.first == leaf }.reduce(0) { $0 + $1.count }
    }

    /// The share of `leaf`'s samples whose stack satisfies `condition`.
    func share(leaf: String, where condition: (Stack) -> Bool) -> Double {
        let total = self.samples(leaf: leaf)
        guard total > 0 else { return 0 }
        let matching = self.stacks.filter { $0.functions.first == leaf && condition($0) }.reduce(0) { $0 + $1.count }
        return Double(matching) / Double(total)
    }

    /// The most frequent stacks of `leaf`, for failure messages.
    func examples(leaf: String) -> String {
        self.stacks.filter { $0.functions.first == leaf }.sorted { $0.count > $1.count }.prefix(3)
            .map { "\($0.count)x \($0.functions.joined(separator: " <- ")) \($0.marker.map { "\($0)" } ?? "")" }
            .joined(separator: "\n")
    }
}
