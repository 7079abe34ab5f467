// MemoryMeasurement.swift: the peak-RSS measurement for BENCHMARKS-symbolizer.md (only with HEARTH_MEASURE_RSS=1)
// and its helpers: a fabricated procfs process mapping large binaries, addresses sampled from nm, VmRSS/VmHWM.

import Foundation
import Logging
import Testing

@testable import HearthELF
@testable import HearthSymbolizer

#if canImport(Glibc)
import Glibc
#endif

/// A process that maps `binaries` at the given bases, described by a fabricated procfs (`PID/maps` plus a
/// `PID/root` link to `/`), so large binaries that aren't running can be symbolized like mapped ones.
struct FakeProcess {
    let procRoot: String
    let pid: Int32 = 4242

    init(binaries: [(path: String, base: UInt64)]) throws {
        self.procRoot = NSTemporaryDirectory() + "hearth-fake-proc-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let directory = "\(self.procRoot)/\(self.pid)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: "\(directory)/root", withDestinationPath: "/")
        var lines: [String] = []
        for (path, base) in binaries {
            let elf = try ELFFile(path: path)
            var info = stat()
            _ = stat(path, &info)
            for header in elf.programHeaders where header.isLoad {
                let start = base + (header.virtualAddress & ~0xfff)
                let end = base + ((header.virtualAddress + header.memorySize + 0xfff) & ~0xfff)
                let permissions = header.isExecutable ? "r-xp" : "r--p"
                let offset = String(header.offset & ~0xfff, radix: 16)
                lines.append(
                    "\(String(start, radix: 16))-\(String(end, radix: 16)) \(permissions) \(offset) 08:01 \(info.st_ino) \(path)"
                )
            }
        }
        try (lines.joined(separator: "\n") + "\n").write(
            toFile: "\(directory)/maps",
            atomically: true,
            encoding: .utf8
        )
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: self.procRoot)
    }
}

/// `nm`'s sized text symbols of `path`, spread evenly, at most `limit`: (middle address, names at the start).
func sampledTextSymbols(
    _ arguments: [String],
    path: String,
    limit: Int
) throws -> [(
    value: UInt64, size: UInt64, names: Set<String>
)] {
    var byAddress: [UInt64: (size: UInt64, names: Set<String>)] = [:]
    for line in try runTool("nm", arguments + [path]).split(separator: "\n") {
        let fields = line.split(separator: " ")
        guard fields.count == 4, "TtWwi".contains(fields[2]), let value = UInt64(fields[0], radix: 16),
            let size = UInt64(fields[1], radix: 16), size > 1, value != 0
        else {
            continue
        }
        byAddress[value, default: (size, [])].names.insert(
            String(fields[3]).split(separator: "@").first.map(String.init) ?? ""
        )
        byAddress[value]!.size = max(byAddress[value]!.size, size)
    }
    let sorted = byAddress.map { ($0.key, $0.value.size, $0.value.names) }.sorted { $0.0 < $1.0 }
    let step = max(1, sorted.count / limit)
    return stride(from: 0, to: sorted.count, by: step).map { sorted[$0] }
}

/// The symbolizer's accounted cache bytes, for the measurement's output (not available before the byte budget).
func cachedBytes(_ symbolizer: Symbolizer) -> String {
    " cached_kib=\(symbolizer.cachedSymbolBytes >> 10)"
}

/// A `VmRSS`/`VmHWM` line of /proc/self/status, in KiB.
func memoryStatus(_ field: String) -> Int {
    let text = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
    }
    return 0
}

/// Peak-RSS measurement for BENCHMARKS-symbolizer.md; runs only with `HEARTH_MEASURE_RSS=1` (it is a
/// measurement, not a timed unit test):
///
///     HEARTH_MEASURE_RSS=1 swift test --filter MemoryMeasurement
///
/// The addresses (from `nm`) are prepared here, then symbolized in a fresh child process (this test binary
/// running only ``MemoryMeasurement/worker()``), so the peak RSS it reports (`VmHWM`) contains the
/// symbolizer's memory and the test runtime's baseline, not this process's `nm` output.
@Suite("Symbolizer peak memory (measurement)")
struct MemoryMeasurement {
    @Test(
        "peak RSS of symbolizing ~10k addresses across swift-frontend, clang and libc",
        .enabled(if: ProcessInfo.processInfo.environment["HEARTH_MEASURE_RSS"] == "1")
    )
    func peakRSS() throws {
        let libc = "/lib/x86_64-linux-gnu/libc.so.6"
        let binaries: [(path: String, base: UInt64, nm: [String])] = [
            ("/opt/swift/usr/bin/swift-frontend", 0x5555_0000_0000, ["-S", "--defined-only"]),
            ("/opt/swift/usr/bin/clang-21", 0x7f00_0000_0000, ["-S", "--defined-only"]),
            (libc, 0x7f10_0000_0000, ["-D", "-S", "--defined-only"]),
        ]
        var samples: [(address: UInt64, names: Set<String>)] = []
        for binary in binaries {
            for symbol in try sampledTextSymbols(binary.nm, path: binary.path, limit: 3400) {
                samples.append((binary.base + symbol.value + symbol.size / 2, symbol.names))
            }
        }
        let process = try FakeProcess(binaries: binaries.map { ($0.path, $0.base) })
        defer { process.remove() }
        try samples.map { String($0.address, radix: 16) }.joined(separator: "\n").write(
            toFile: "\(process.procRoot)/addresses",
            atomically: true,
            encoding: .utf8
        )
        let child = Process()
        child.executableURL = URL(
            fileURLWithPath: try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        )
        child.arguments = ["--testing-library", "swift-testing", "--filter", "MemoryMeasurement/worker"]
        var environment = ProcessInfo.processInfo.environment
        environment["HEARTH_MEASURE_RSS"] = nil
        environment["HEARTH_MEASURE_WORKER"] = process.procRoot
        child.environment = environment
        let output = Pipe()
        child.standardOutput = output
        try child.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        child.waitUntilExit()
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MEASUREMENT") }) else {
            Issue.record("no measurement from the worker: \(text.suffix(2000))")
            return
        }
        let functions = try String(contentsOfFile: "\(process.procRoot)/functions", encoding: .utf8)
            .split(separator: "\n", omittingEmptySubsequences: false)
        var correct = 0
        for (sample, function) in zip(samples, functions)
        where sample.names.contains(where: { Demangler.demangle($0) == function }) {
            correct += 1
        }
        print("\(line) correct=\(correct)")
        #expect(Double(correct) >= 0.99 * Double(samples.count))
    }

    @Test(
        "worker: symbolizes the prepared addresses and reports its peak RSS",
        .enabled(if: ProcessInfo.processInfo.environment["HEARTH_MEASURE_WORKER"] != nil)
    )
    func worker() throws {
        let procRoot = try #require(ProcessInfo.processInfo.environment["HEARTH_MEASURE_WORKER"])
        let addresses = try String(contentsOfFile: "\(procRoot)/addresses", encoding: .utf8)
            .split(separator: "\n").compactMap { UInt64($0, radix: 16) }
        let before = memoryStatus("VmRSS")
        var configuration = Symbolizer.Configuration()
        configuration.procRoot = procRoot
        let symbolizer = Symbolizer(
            configuration: configuration,
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        var functions: [String] = []
        let elapsed = ContinuousClock().measure {
            for address in addresses {
                functions.append(symbolizer.symbolizeUser(pid: 4242, addresses: [address])[0].function ?? "")
            }
        }
        let peak = memoryStatus("VmHWM")
        try functions.joined(separator: "\n").write(toFile: "\(procRoot)/functions", atomically: true, encoding: .utf8)
        print(
            "MEASUREMENT addresses=\(addresses.count) rss_before_kib=\(before) peak_kib=\(peak) "
                + "peak_minus_before_kib=\(peak - before) elapsed=\(elapsed)" + cachedBytes(symbolizer)
        )
    }
}
