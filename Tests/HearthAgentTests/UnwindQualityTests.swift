// UnwindQualityTests.swift: which stacks count as whole (reaching a program's or a thread's start), per leaf module,
// and the reason given for the others.

import HearthSampler
import HearthSymbolizer
import Testing

@testable import HearthAgent

@Suite("Unwind quality")
struct UnwindQualityTests {
    static func frame(_ function: String?, _ module: String) -> SymbolizedFrame {
        SymbolizedFrame(function: function, module: module, address: 0x1000, moduleOffset: 0x1000)
    }

    static let libc = "/usr/lib/x86_64-linux-gnu/libc.so.6"

    @Test("a stack ending in _start, or in libc's start before an unnamed _start, is whole; the leaf names the module")
    func rooted() throws {
        let whole = try #require(
            UnwindQuality.shape(of: [
                Self.frame("hot_leaf", "/opt/app/server"), Self.frame("main", "/opt/app/server"),
                Self.frame("__libc_start_call_main", Self.libc), Self.frame("__libc_start_main", Self.libc),
                Self.frame("_start", "/opt/app/server"),
            ])
        )
        #expect(whole == UnwindQuality.Shape(leafModule: "server", rooted: true, ending: "stops in server"))
        // A stripped executable's _start has no name; libc's start frame just before it does.
        let stripped = try #require(
            UnwindQuality.shape(of: [
                Self.frame("memcpy", Self.libc), Self.frame("__libc_start_main", Self.libc),
                Self.frame(nil, "/usr/bin/python3.11"),
            ])
        )
        #expect(stripped.rooted && stripped.leafModule == "libc.so.6")
        let thread = try #require(
            UnwindQuality.shape(of: [
                Self.frame("work", "/opt/app/server"), Self.frame("start_thread", Self.libc),
                Self.frame("clone3", Self.libc),
            ])
        )
        #expect(thread.rooted)
        #expect(UnwindQuality.shape(of: []) == nil)
    }

    @Test("short stacks say where they stop: an unwinder marker, a module, or frame pointers without tables")
    func reasons() throws {
        let jit = try #require(
            UnwindQuality.shape(of: [Self.frame(nil, "[anon]"), Self.frame("interpret", "/usr/bin/java")])
        )
        let truncated = try #require(
            UnwindQuality.shape(of: [
                Self.frame("recurse", "/opt/app/server"),
                Self.frame("[truncated]", UnwindQuality.markerModule),
            ])
        )
        var quality = UnwindQuality()
        quality.add(jit, source: .unwindTables, count: 3)
        quality.add(truncated, source: .unwindTables, count: 2)
        quality.add(truncated, source: .framePointers, count: 5)
        let rooted = UnwindQuality.Shape(leafModule: "server", rooted: true, ending: "stops in server")
        quality.add(rooted, source: .unwindTables, count: 10)

        #expect(quality.modules["[anon]"]?.shortStacksEndIn == ["stops in java": 3])
        let server = try #require(quality.modules["server"])
        #expect(server.samples == 17 && server.rooted == 10)
        #expect(server.shortStacksEndIn == ["[truncated]": 2, "frame pointers (no tables)": 5])
        #expect(quality.bySamples.map(\.name) == ["server", "[anon]"])

        var merged = UnwindQuality()
        merged.merge(quality)
        merged.merge(quality)
        #expect(merged.samples == 40 && merged.rooted == 20)
        #expect(merged.modules["server"]?.shortStacksEndIn["[truncated]"] == 4)
    }
}
