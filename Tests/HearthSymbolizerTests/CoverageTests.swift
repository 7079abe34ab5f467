// CoverageTests.swift: the ≥ 99 % named-frames goal, checked against `nm` on real binaries mapped in this process:
// this unstripped test binary, and libc with and without debug files.

import Foundation
import HearthSymbolizer
import Logging
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The ≥ 99 % named-frames goal, checked against `nm` (an independent reader) on real binaries mapped in
/// this process: every sized function is sampled in its middle and must come back with its own name (or
/// an alias at the same address).
@Suite("Symbolization coverage")
struct CoverageTests {
    /// The start of the offset-0 mapping of the first file in this process's maps matching `matches`.
    private func base(of matches: (String) -> Bool) throws -> (path: String, start: UInt64) {
        let maps = try Self.readProcFile("/proc/self/maps")
        for line in maps.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 6, fields[2] == "00000000" else { continue }
            let path = fields[5...].joined(separator: " ")
            if matches(path), let start = UInt64(fields[0].prefix { $0 != "-" }, radix: 16) {
                return (path, start)
            }
        }
        throw ToolError(description: "no mapping found")
    }

    /// Reads a /proc file to its end. Data(contentsOf:) trusts the size stat reports (0 here) and can stop
    /// after one short read, which truncates a long maps file in a busy test process.
    private static func readProcFile(_ path: String) throws -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw ToolError(description: "open \(path): errno \(errno)") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw ToolError(description: "read \(path): errno \(errno)") }
            if count == 0 { break }
            bytes += chunk[0..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// nm's sized text symbols: address → names.
    private func textSymbols(_ arguments: [String]) throws -> [(value: UInt64, size: UInt64, names: Set<String>)] {
        var byAddress: [UInt64: (size: UInt64, names: Set<String>)] = [:]
        for symbol in try nmSizedSymbols(arguments)
        where "TtWwi".contains(symbol.type) && symbol.size > 1 && symbol.value != 0 {
            byAddress[symbol.value, default: (symbol.size, [])].names.insert(
                symbol.name.split(separator: "@").first.map(String.init) ?? ""
            )
            byAddress[symbol.value]!.size = max(byAddress[symbol.value]!.size, symbol.size)
        }
        return byAddress.map { ($0.key, $0.value.size, $0.value.names) }.sorted { $0.value < $1.value }
    }

    private func measure(
        path: String,
        base: UInt64,
        nmArguments: [String],
        debugDirectories: [String] = ["/usr/lib/debug"]
    ) throws -> (named: Int, correct: Int, total: Int) {
        let symbols = try self.textSymbols(nmArguments + [path])
        #expect(symbols.count > 100)
        var configuration = Symbolizer.Configuration()
        configuration.debugDirectories = debugDirectories
        let symbolizer = Symbolizer(
            configuration: configuration,
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        // Sample at most 3000 functions, spread over the whole binary.
        let step = max(1, symbols.count / 3000)
        var named = 0
        var correct = 0
        var total = 0
        var misses: [String] = []
        for index in stride(from: 0, to: symbols.count, by: step) {
            let symbol = symbols[index]
            let frame = symbolizer.symbolizeUser(pid: getpid(), addresses: [base + symbol.value + symbol.size / 2])[0]
            total += 1
            if let function = frame.function {
                named += 1
                if symbol.names.contains(where: { Demangler.demangle($0) == function }) {
                    correct += 1
                } else if misses.count < 5 {
                    misses.append("\(symbol.names) -> \(function)")
                }
            }
        }
        #expect(misses.count < 5, "\(misses)")
        return (named, correct, total)
    }

    @Test("≥ 99 % of the functions of this unstripped Swift test binary are named correctly")
    func testBinary() throws {
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let (path, start) = try self.base { $0 == executable }
        let result = try self.measure(path: path, base: start, nmArguments: ["--defined-only"])
        print("test binary coverage: \(result)")
        #expect(Double(result.named) >= 0.99 * Double(result.total), "\(result)")
        #expect(Double(result.correct) >= 0.99 * Double(result.total), "\(result)")
    }

    @Test(
        "≥ 99 % of libc's exported functions are named correctly, from .dynsym or a debug file",
        arguments: [[], ["/usr/lib/debug"]]
    )
    func libc(debugDirectories: [String]) throws {
        let (path, start) = try self.base { $0.hasSuffix("/libc.so.6") }
        let result = try self.measure(
            path: path,
            base: start,
            nmArguments: ["-D", "--defined-only"],
            debugDirectories: debugDirectories
        )
        print("libc coverage with debug directories \(debugDirectories): \(result)")
        #expect(Double(result.named) >= 0.99 * Double(result.total), "\(result)")
        #expect(Double(result.correct) >= 0.99 * Double(result.total), "\(result)")
    }
}
