// KernelSymbolTests.swift: kernel frames from kallsyms: a synthetic file (text symbols only, modules, return
// addresses), hidden addresses and a missing file giving unresolved frames, and the real /proc/kallsyms.

import Foundation
import HearthSymbolizer
import Logging
import Testing

private func symbolizer(procRoot: String) -> Symbolizer {
    var configuration = Symbolizer.Configuration()
    configuration.procRoot = procRoot
    return Symbolizer(
        configuration: configuration,
        logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    )
}

/// A procfs stand-in holding only a `kallsyms` file.
private func fakeProcRoot(kallsyms: String) throws -> String {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hearth-kallsyms-\(UUID())").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    try kallsyms.write(toFile: "\(directory)/kallsyms", atomically: true, encoding: .utf8)
    return directory
}

@Suite("Kernel symbols")
struct KernelSymbolTests {
    @Test("a synthetic kallsyms: text symbols only, modules, return addresses")
    func synthetic() throws {
        let root = try fakeProcRoot(
            kallsyms: """
                ffffffff81000000 T _stext
                ffffffff81000100 t do_one_initcall
                ffffffff81000200 D some_data
                ffffffff81000300 T schedule
                ffffffff81000400 W weak_function
                ffffffff81000500 r read_only
                not a line
                ffffffffc0000000 t ext4_file_read_iter\t[ext4]
                ffffffffc0000100 T ext4_sync_file\t[ext4]
                ffffffffc0100000 t nf_hook_slow\t[nf_tables]

                """
        )
        defer { try? FileManager.default.removeItem(atPath: root) }
        let kernel = symbolizer(procRoot: root)
        #expect(kernel.refreshKernelSymbols() == 7)
        let frames = kernel.symbolizeKernel(addresses: [
            0xffff_ffff_8100_0310,  // in schedule
            0xffff_ffff_8100_0300,  // return address == start of schedule: the call was in do_one_initcall's range
            0xffff_ffff_8100_0210,  // data symbols are skipped: still do_one_initcall
            0xffff_ffff_c000_0120,
            0xffff_ffff_c010_0001,
            0x1000,  // below every symbol
            0xffff_ffff_c080_0000,  // far past the last symbol
        ])
        #expect(
            frames.map(\.function) == [
                "schedule", "do_one_initcall", "do_one_initcall", "ext4_sync_file", "nf_hook_slow", nil, nil,
            ]
        )
        #expect(
            frames.map(\.module) == [
                "[kernel.kallsyms]", "[kernel.kallsyms]", "[kernel.kallsyms]", "[ext4]", "[nf_tables]",
                "[kernel.kallsyms]", "[kernel.kallsyms]",
            ]
        )
        #expect(frames.allSatisfy { $0.isKernel && $0.moduleOffset == $0.address })
        #expect(frames[5].displayName == "[kernel.kallsyms]+0x1000")
        #expect(kernel.statistics.kernelFramesResolved == 5)
        #expect(kernel.statistics.kernelFramesUnresolved == 2)
    }

    @Test("kptr_restrict (all-zero addresses) and a missing kallsyms give unresolved frames")
    func hiddenAddresses() throws {
        let root = try fakeProcRoot(
            kallsyms: """
                0000000000000000 T _stext
                0000000000000000 T schedule
                0000000000000000 t ext4_sync_file\t[ext4]

                """
        )
        defer { try? FileManager.default.removeItem(atPath: root) }
        let hidden = symbolizer(procRoot: root)
        let frames = hidden.symbolizeKernel(addresses: [0xffff_ffff_8100_0310, 0])
        #expect(frames.allSatisfy { $0.function == nil && $0.module == "[kernel.kallsyms]" && $0.isKernel })
        #expect(hidden.statistics.kernelFramesUnresolved == 2)

        let missing = symbolizer(procRoot: "/nonexistent-proc")
        #expect(missing.symbolizeKernel(addresses: [0xffff_ffff_8100_0000])[0].function == nil)
        #expect(missing.refreshKernelSymbols() == 0)
    }

    @Test("the real /proc/kallsyms")
    func real() throws {
        // procfs reports size 0, so read to EOF.
        let handle = try #require(FileHandle(forReadingAtPath: "/proc/kallsyms"))
        let text = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
        try handle.close()
        // Find schedule's address ourselves.
        var schedule: UInt64?
        for line in text.split(separator: "\n") where line.hasSuffix(" T schedule") {
            schedule = UInt64(line.prefix { $0 != " " }, radix: 16)
        }
        let address = try #require(schedule)
        let kernel = symbolizer(procRoot: "/proc")
        let frames = kernel.symbolizeKernel(addresses: [address + 1, address + 1])
        if address == 0 {
            // kptr_restrict hides addresses from this process: nothing may resolve, nothing may crash.
            #expect(frames.allSatisfy { $0.function == nil })
        } else {
            #expect(frames[0].function == "schedule")
            #expect(frames[0].module == "[kernel.kallsyms]")
            #expect(kernel.refreshKernelSymbols() > 10000)
        }
    }
}
