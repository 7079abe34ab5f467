// MemoryBudgetTests.swift: the symbolizer's byte budget: cost-based LRU eviction, 16 bytes per function with names
// read from the file (equal to nm), and a small budget: names still equal to nm, cached bytes within it, evicted
// files closed.

import Foundation
import Logging
import Testing

@testable import HearthELF
@testable import HearthSymbolizer

#if canImport(Glibc)
import Glibc
#endif

/// The number of this process's open descriptors that refer to `path`.
private func openDescriptors(to path: String) -> Int {
    let directory = "/proc/self/fd"
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    return entries.filter { (try? FileManager.default.destinationOfSymbolicLink(atPath: "\(directory)/\($0)")) == path }
        .count
}

@Suite("Symbolizer memory budget")
struct MemoryBudgetTests {
    @Test("LRU cache evicts by cost and refuses entries larger than its budget")
    func costEviction() {
        var cache = LRUCache<Int, String>(capacity: 100, maximumCost: 100)
        cache.set(1, "one", cost: 40)
        cache.set(2, "two", cost: 40)
        #expect(cache.totalCost == 80)
        _ = cache.get(1)
        let evicted = cache.set(3, "three", cost: 30)
        #expect(evicted?.0 == 2)
        #expect(cache.totalCost == 70 && cache.count == 2)
        cache.set(4, "four", cost: 101)
        #expect(!cache.contains(4) && cache.totalCost == 70)
        // Growing an entry evicts others as needed (30 + 71 > 100).
        cache.set(1, "uno", cost: 71)
        #expect(cache.get(1) == "uno" && !cache.contains(3) && cache.totalCost == 71)
        cache.set(5, "five", cost: 100)
        #expect(cache.count == 1 && cache.totalCost == 100)
        #expect(cache.remove(5) == "five" && cache.totalCost == 0)
    }

    @Test("a table keeps 16 bytes per function and reads names from the file, equal to nm")
    func lazyNames() throws {
        let path = "/opt/swift/usr/bin/swift-frontend"
        let elf = try ELFFile(path: path)
        var builder = SymbolTable.Builder()
        try builder.addFunctionSymbols(of: elf, in: .all)
        let table = builder.build()
        print("swift-frontend: \(table.count) functions, \(table.byteCount) bytes")
        #expect(table.count > 100_000)
        #expect(table.byteCount < table.count * 16 + 4096)
        let symbols = try sampledTextSymbols(["-S", "--defined-only"], path: path, limit: 2000)
        var correct = 0
        for symbol in symbols {
            if let name = table.lookup(symbol.value + symbol.size / 2)?.name, symbol.names.contains(name) {
                correct += 1
            }
        }
        #expect(Double(correct) >= 0.99 * Double(symbols.count), "\(correct) of \(symbols.count)")
    }

    @Test(
        "a small maxSymbolBytes: names stay equal to nm, cached bytes stay within it, evicted files are closed"
    )
    func smallBudget() throws {
        let frontend = "/opt/swift/usr/bin/swift-frontend"
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let libc = "/lib/x86_64-linux-gnu/libc.so.6"
        // Tables' share is three quarters of the budget: room for the larger of the two big tables, not both.
        var largest = 0
        for path in [frontend, executable] {
            var builder = SymbolTable.Builder()
            try builder.addFunctionSymbols(of: try ELFFile(path: path), in: .all)
            largest = max(largest, builder.build().byteCount)
        }
        let budget = (largest + 128 << 10) * 4 / 3
        let binaries: [(path: String, base: UInt64, nm: [String])] = [
            (frontend, 0x5555_0000_0000, ["-S", "--defined-only"]),
            (executable, 0x5600_0000_0000, ["-S", "--defined-only"]),
            (libc, 0x7f10_0000_0000, ["-D", "-S", "--defined-only"]),
        ]
        let process = try FakeProcess(binaries: binaries.map { ($0.path, $0.base) })
        defer { process.remove() }
        var configuration = Symbolizer.Configuration()
        configuration.procRoot = process.procRoot
        configuration.maxSymbolBytes = budget
        let symbolizer = Symbolizer(
            configuration: configuration,
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        let samples = try binaries.map { binary in
            try sampledTextSymbols(binary.nm, path: binary.path, limit: 300).map {
                (address: binary.base + $0.value + $0.size / 2, names: $0.names)
            }
        }
        var total = 0
        var correct = 0
        var misses: [String] = []
        var peak = 0
        // Two rounds, binary after binary: each big table evicts the other and is loaded again next round.
        for round in 0..<2 {
            for (index, binarySamples) in samples.enumerated() {
                for sample in binarySamples {
                    let frame = symbolizer.symbolizeUser(pid: process.pid, addresses: [sample.address])[0]
                    total += 1
                    if let function = frame.function,
                        sample.names.contains(where: { Demangler.demangle($0) == function })
                    {
                        correct += 1
                    } else if misses.count < 5 {
                        misses.append("\(sample.names) -> \(frame.function ?? "nil")")
                    }
                    let cached = symbolizer.cachedSymbolBytes
                    peak = max(peak, cached)
                    #expect(cached <= budget)
                }
                if index == 1 {
                    // The test binary's table pushed swift-frontend's out, and its descriptor was closed.
                    #expect(openDescriptors(to: frontend) == 0, "round \(round)")
                }
                if index == 0 {
                    #expect(openDescriptors(to: frontend) == 1, "round \(round)")
                }
            }
        }
        print("small budget: \(correct) of \(total) correct, budget \(budget), peak cached \(peak)")
        #expect(peak > budget / 2)
        #expect(Double(correct) >= 0.99 * Double(total), "\(misses)")
    }
}
