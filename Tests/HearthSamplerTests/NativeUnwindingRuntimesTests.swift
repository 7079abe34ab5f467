// NativeUnwindingRuntimesTests.swift: the .eh_frame unwinder on the real kernel against programs other compilers
// built: Debian's own python3 (stripped, without frame pointers) and a Swift program built with `swiftc -O`. Every
// sample of the process must reach the program's entry and libc's start; with frame-pointer unwinding they don't.

import Foundation
import HearthSampler
import HearthSymbolizer
import HearthTestSupport
import Logging
import Testing

enum RuntimeWorkloads {
    /// A two-function loop: `outer` calls `inner` forever. "ready" once the interpreter has imported everything it
    /// will, so the sampler's mapping table (read at start) is final.
    static let pythonScript = """
        def inner(n):
            total = 0
            for i in range(n):
                total += i * i
            return total

        def outer():
            while True:
                inner(1000)

        print("ready", flush=True)
        outer()
        """

    struct StartError: Error, CustomStringConvertible {
        var description: String
    }

    /// Starts `/usr/bin/python3` on the loop and waits (up to 10 s) until it prints "ready".
    static func startPython() throws -> BackgroundProcess {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hearth-unwind-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let process = try BackgroundProcess("/usr/bin/python3", ["-c", self.pythonScript], directory: directory.path)
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline, process.isRunning {
            if process.output.contains("ready") { return process }
            Thread.sleep(forTimeInterval: 0.01)
        }
        process.stop()
        throw StartError(description: "python3 never got ready: \(process.output)")
    }

    static let swiftSource = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/unwind_swift_workload.swift").path

    /// Built once per test process with `swiftc -O`, as a release build of a Swift program is.
    static let swiftWorkload = Result { try buildSwiftWorkload() }

    static func buildSwiftWorkload() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hearth-unwind-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let binary = directory.appendingPathComponent("unwind-swift-O").path
        let swiftc = try self.swiftc()
        let output = try ChildProcess.run(
            swiftc,
            ["-O", "-module-name", "SwiftWorkload", "-o", binary, self.swiftSource]
        )
        guard output.status == 0 else { throw StartError(description: "\(swiftc) failed: \(output.output)") }
        return binary
    }

    /// The compiler of the toolchain whose runtime this test process runs on (`usr/lib/swift/linux/libswiftCore.so`
    /// → `usr/bin/swiftc`), else the first `swiftc` on PATH.
    static func swiftc() throws -> String {
        let maps = (try? String(contentsOfFile: "/proc/self/maps", encoding: .utf8)) ?? ""
        var candidates: [String] = []
        if let line = maps.split(separator: "\n").first(where: { $0.hasSuffix("/libswiftCore.so") }),
            let path = line.split(separator: " ", omittingEmptySubsequences: true).last
        {
            let usr = URL(fileURLWithPath: String(path)).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().deletingLastPathComponent()
            candidates.append(usr.appendingPathComponent("bin/swiftc").path)
        }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        candidates += path.split(separator: ":").map { "\($0)/swiftc" }
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw StartError(description: "no swiftc in \(candidates)")
        }
        return found
    }

    /// Starts the Swift workload and waits (up to 10 s) until the dynamic linker has mapped libc.
    static func startSwift() throws -> BackgroundProcess {
        let process = try BackgroundProcess(try self.swiftWorkload.get())
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let maps = (try? String(contentsOfFile: "/proc/\(process.pid)/maps", encoding: .utf8)) ?? ""
            if maps.contains("libc.so.6") { return process }
            Thread.sleep(forTimeInterval: 0.01)
        }
        process.stop()
        throw StartError(description: "libc never appeared in the maps of \(process.pid)")
    }
}

extension SymbolizedRecording {
    /// Samples the process until it has `samples` samples with a user stack, whatever their leaf, for at most
    /// `seconds`.
    static func record(
        pid: Int32,
        samples: UInt64,
        unwinding: NativeUnwinding?,
        seconds: Double = 30
    ) throws -> SymbolizedRecording {
        let logger = Logger(label: "test")
        let sampler = try CPUSampler(
            configuration: .init(frequency: 499, pid: pid, nativeUnwinding: unwinding),
            logger: logger
        )
        let symbolizer = Symbolizer(logger: logger)
        var recording = SymbolizedRecording()
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            Thread.sleep(forTimeInterval: 0.25)
            let drain = try sampler.drain()
            recording.counters = drain.counters
            for sample in drain.samples where sample.pid == pid && !sample.userStack.isEmpty {
                let marker = sample.userStack.last.flatMap(StackMarker.init(address:))
                let addresses = marker == nil ? sample.userStack : Array(sample.userStack.dropLast())
                recording.stacks.append(
                    Stack(
                        functions: symbolizer.symbolizeUser(pid: pid, addresses: addresses).map(\.displayName),
                        addresses: sample.userStack,
                        marker: marker,
                        source: sample.userStackSource,
                        count: sample.count,
                        inKernel: !sample.kernelStack.isEmpty
                    )
                )
            }
        } while recording.total < samples && Date() < deadline
        return recording
    }

    /// Every sample with a user stack.
    var total: UInt64 { self.stacks.reduce(0) { $0 + $1.count } }

    /// The share of all samples whose stack satisfies `condition`.
    func share(where condition: (Stack) -> Bool) -> Double {
        guard self.total > 0 else { return 0 }
        return Double(self.stacks.filter(condition).reduce(0) { $0 + $1.count }) / Double(self.total)
    }

    /// The most frequent stacks failing `condition`, for failure messages.
    func examples(failing condition: (Stack) -> Bool) -> String {
        self.stacks.filter { !condition($0) }.sorted { $0.count > $1.count }.prefix(3)
            .map { "\($0.count)x \($0.functions.joined(separator: " <- ")) \($0.marker.map { "\($0)" } ?? "")" }
            .joined(separator: "\n")
    }
}

@Suite(
    "Native unwinding of python3 and a Swift release build on the real kernel",
    .serialized,
    .enabled(if: BPFTestSupport.enabled, BPFTestSupport.skipReason)
)
struct NativeUnwindingRuntimesTests {
    static let unwinding = NativeUnwinding(rowBudget: 1 << 20, maxProcesses: 16, stacksPerInterval: 1024)

    /// `caller` followed by libc's start code (`__libc_start_call_main`, named through libc6-dbg, which
    /// scripts/install-deps.sh installs) and the executable's `_start`, where the stop row ends the walk.
    static func reaches(_ caller: String, _ stack: SymbolizedRecording.Stack) -> Bool {
        let functions = stack.functions
        guard stack.marker == nil, let index = functions.firstIndex(of: caller), index + 1 < functions.count else {
            return false
        }
        return functions[index + 1] == "__libc_start_call_main" && functions.contains("__libc_start_main")
            && functions.last == "_start"
    }

    /// Debian's python3.11 is stripped (`main` is in neither `.dynsym` nor anything installed), and its `main` is
    /// a tail call (`jmp Py_BytesMain`), so no frame of it is ever on the stack, debug symbols or not: the
    /// interpreter's entry is `Py_BytesMain` (exported in `.dynsym`, so named), returning into libc's start.
    /// `Py_RunMain` (also exported) runs the script; the frames between are unnamed static functions.
    static func reachesPythonMain(_ stack: SymbolizedRecording.Stack) -> Bool {
        guard Self.reaches("Py_BytesMain", stack), let run = stack.functions.firstIndex(of: "Py_RunMain") else {
            return false
        }
        return run < stack.functions.firstIndex(of: "Py_BytesMain")!
    }

    @Test("python3 (stripped, no frame pointers): at least 95% of the samples reach Py_BytesMain and libc's start")
    func python() throws {
        let workload = try RuntimeWorkloads.startPython()
        let recording = try SymbolizedRecording.record(pid: workload.pid, samples: 300, unwinding: Self.unwinding)
        try #require(recording.total >= 200, "too few samples: \(recording.total)")
        let share = recording.share(where: Self.reachesPythonMain)
        print("native unwinding, python3: \(share * 100)% of \(recording.total) reach Py_BytesMain and _start")
        print("most frequent:\n\(recording.examples(failing: { _ in false }))")
        #expect(share >= 0.95, "whole stacks: \(share)\n\(recording.examples(failing: Self.reachesPythonMain))")
        // The loop itself is interpreted by the eval loop, which the whole stacks go through.
        let evaluating = recording.share { $0.functions.contains("_PyEval_EvalFrameDefault") }
        #expect(evaluating >= 0.9, "samples in the eval loop: \(evaluating)")
        #expect(recording.stacks.allSatisfy { $0.source == .unwindTables })
        #expect(recording.counters.lostSamples == 0)
        #expect(recording.counters.unwoundStacksLost == 0)
    }

    @Test("python3 with frame-pointer unwinding (unwinding off): hardly any sample reaches Py_BytesMain")
    func pythonWithFramePointers() throws {
        let workload = try RuntimeWorkloads.startPython()
        let recording = try SymbolizedRecording.record(pid: workload.pid, samples: 300, unwinding: nil)
        try #require(recording.total >= 200, "too few samples: \(recording.total)")
        let share = recording.share(where: Self.reachesPythonMain)
        print("frame pointers, python3: \(share * 100)% of \(recording.total) reach Py_BytesMain and _start")
        print("most frequent:\n\(recording.examples(failing: { _ in false }))")
        #expect(share < 0.05, "frame pointers unexpectedly walked python3's stacks")
        #expect(recording.stacks.allSatisfy { $0.source == .framePointers })
    }

    /// Swift's `main` (the top-level code), called from libc's start, and below it the workload's own chain when
    /// the sample is in it.
    static func reachesSwiftMain(_ stack: SymbolizedRecording.Stack) -> Bool {
        guard Self.reaches("main", stack) else { return false }
        let functions = stack.functions
        if let sort = functions.firstIndex(where: { $0.hasPrefix("SwiftWorkload.sortRound(") }) {
            return sort + 2 < functions.count && functions[sort + 1].hasPrefix("SwiftWorkload.workLoop(")
                && functions[sort + 2] == "main"
        }
        return true
    }

    /// A whole stack through the sort: frames above libc's qsort (its merge sort, the closure, memcmp), then
    /// `sortRound`.
    static func throughQsort(_ stack: SymbolizedRecording.Stack) -> Bool {
        guard Self.reachesSwiftMain(stack), let sort = stack.functions.firstIndex(where: { $0.hasPrefix("qsort") })
        else { return false }
        return sort > 0 && stack.functions[sort + 1].hasPrefix("SwiftWorkload.sortRound(")
    }

    @Test("a swiftc -O program: at least 90% of the samples reach Swift's main and libc's start")
    func swiftRelease() throws {
        let workload = try RuntimeWorkloads.startSwift()
        let recording = try SymbolizedRecording.record(pid: workload.pid, samples: 300, unwinding: Self.unwinding)
        try #require(recording.total >= 200, "too few samples: \(recording.total)")
        let share = recording.share(where: Self.reachesSwiftMain)
        print("native unwinding, swiftc -O: \(share * 100)% of \(recording.total) reach main and _start")
        print("most frequent:\n\(recording.examples(failing: { _ in false }))")
        #expect(share >= 0.9, "whole stacks: \(share)\n\(recording.examples(failing: Self.reachesSwiftMain))")
        // Most of the time goes to the sort: its stacks pass through libc's qsort into the C-convention closure.
        let throughQsort = recording.share(where: Self.throughQsort)
        print("native unwinding, swiftc -O: \(throughQsort * 100)% through qsort")
        print("most frequent:\n\(recording.examples(failing: { !Self.throughQsort($0) }))")
        #expect(
            throughQsort >= 0.5,
            "stacks through qsort: \(throughQsort)\n\(recording.examples(failing: { _ in false }))"
        )
        #expect(recording.stacks.allSatisfy { $0.source == .unwindTables })
        #expect(recording.counters.lostSamples == 0)
        #expect(recording.counters.unwoundStacksLost == 0)
    }

    @Test("the swiftc -O program with frame-pointer unwinding (unwinding off): hardly any sample reaches main")
    func swiftReleaseWithFramePointers() throws {
        // swiftc -O on Linux omits frame pointers (main, workLoop and sortRound never set up RBP).
        let workload = try RuntimeWorkloads.startSwift()
        let recording = try SymbolizedRecording.record(pid: workload.pid, samples: 300, unwinding: nil)
        try #require(recording.total >= 200, "too few samples: \(recording.total)")
        let share = recording.share(where: Self.reachesSwiftMain)
        print("frame pointers, swiftc -O: \(share * 100)% of \(recording.total) reach main and _start")
        print("most frequent:\n\(recording.examples(failing: { _ in false }))")
        #expect(share < 0.05, "frame pointers unexpectedly walked the Swift program's stacks")
        #expect(recording.stacks.allSatisfy { $0.source == .framePointers })
    }
}
