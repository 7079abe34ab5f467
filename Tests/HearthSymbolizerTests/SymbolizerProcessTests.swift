// SymbolizerProcessTests.swift: the Symbolizer on live processes: PIE and non-PIE, stripped binaries, separate
// debug files, shared and dlopen'ed libraries, container roots, deleted binaries, perf maps, the vDSO, the test
// process itself, and tiny caches under concurrent callers.

import Foundation
import HearthELF
import HearthSymbolizer
import Logging
import Testing

#if canImport(Glibc)
import Glibc
#endif

private func makeSymbolizer(_ configure: (inout Symbolizer.Configuration) -> Void = { _ in }) -> Symbolizer {
    var configuration = Symbolizer.Configuration()
    configure(&configuration)
    return Symbolizer(
        configuration: configuration,
        logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    )
}

@Suite("Symbolizer on live processes")
struct SymbolizerProcessTests {
    @Test(
        "names functions of PIE and non-PIE executables, using address - 1 for return addresses",
        arguments: [true, false]
    )
    func executable(pie: Bool) throws {
        let fixtures = try Fixtures.get()
        let path = pie ? fixtures.pie : fixtures.nonPIE
        let symbols = try nmSymbols(path)
        let child = try FixtureProcess(path)
        defer { child.stop() }
        let symbolizer = makeSymbolizer()

        let leaf = try child.address("hearth_leaf")
        let middle = try child.address("hearth_middle")
        let helper = try child.address("hearth_static_helper")
        let main = try child.address("main")
        let middleSize = try #require(symbols["hearth_middle"]).size
        // The leaf is an instruction pointer; the others are return addresses. The end of hearth_middle
        // is not inside it, but as a return address it belongs to the call just before it.
        let frames = symbolizer.symbolizeUser(
            pid: child.pid,
            addresses: [leaf + 1, middle + middleSize, helper + 4, main + 2]
        )
        #expect(frames.map(\.function) == ["hearth_leaf", "hearth_middle", "hearth_static_helper", "main"])
        #expect(frames.allSatisfy { $0.module == path && !$0.isKernel })
        // moduleOffset is the link-time address nm prints.
        #expect(frames[0].moduleOffset == (try #require(symbols["hearth_leaf"])).value + 1)
        #expect(frames[3].moduleOffset == (try #require(symbols["main"])).value + 2)
        #expect(frames[0].address == leaf + 1)
        if !pie {
            #expect(frames[0].moduleOffset == frames[0].address)
        }
        let buildID = try readelfBuildID(path)
        #expect(frames.allSatisfy { $0.buildID == buildID })

        // The same address as a leaf (the sampled instruction) is past the end of hearth_middle.
        let leafFrame = symbolizer.symbolizeUser(pid: child.pid, addresses: [middle + middleSize])
        #expect(leafFrame[0].function != "hearth_middle")

        let mappings = symbolizer.mappings(pid: child.pid)
        let own = try #require(mappings.first { $0.path == path })
        #expect(own.buildID == buildID)
        #expect(own.start <= leaf && leaf < own.end)
        #expect(mappings.contains { $0.path.hasSuffix("libc.so.6") && $0.buildID != nil })
        #expect(symbolizer.statistics.userFramesResolved == 4 + (leafFrame[0].function == nil ? 0 : 1))
    }

    @Test("a stripped binary's own functions come back as module+0xoffset")
    func stripped() throws {
        let fixtures = try Fixtures.get()
        let unstrippedSymbols = try nmSymbols(fixtures.pie)
        let child = try FixtureProcess(fixtures.stripped)
        defer { child.stop() }
        let symbolizer = makeSymbolizer()
        let leaf = try child.address("hearth_leaf")
        let frames = symbolizer.symbolizeUser(pid: child.pid, addresses: [leaf + 1])
        #expect(frames[0].function == nil)
        #expect(frames[0].module == fixtures.stripped)
        // prog_pie and prog_stripped are compiled from the same source with the same flags except the
        // variant string, so the function sits at the same link-time address.
        let expectedOffset = try #require(unstrippedSymbols["hearth_leaf"]).value + 1
        #expect(frames[0].moduleOffset == expectedOffset)
        #expect(frames[0].displayName == "prog_stripped+0x\(String(expectedOffset, radix: 16))")
        #expect(symbolizer.statistics.userFramesUnresolved == 1)
    }

    @Test("separate debug files (.gnu_debuglink, /usr/lib/debug/.build-id) and MiniDebugInfo are used")
    func separateDebugFiles() throws {
        let fixtures = try Fixtures.get()
        let symbolizer = makeSymbolizer { $0.debugDirectories = [fixtures.debugRoot] }
        for path in [fixtures.debugLinked, fixtures.buildIDDebug, fixtures.miniDebugInfo] {
            let child = try FixtureProcess(path)
            defer { child.stop() }
            let frames = symbolizer.symbolizeUser(
                pid: child.pid,
                addresses: [try child.address("hearth_leaf") + 1, try child.address("hearth_static_helper") + 1]
            )
            #expect(frames.map(\.function) == ["hearth_leaf", "hearth_static_helper"], "\(path)")
        }
        // Without the debug directory, the build-id variant has no names.
        let plain = makeSymbolizer { $0.debugDirectories = [] }
        let child = try FixtureProcess(fixtures.buildIDDebug)
        defer { child.stop() }
        let frames = plain.symbolizeUser(pid: child.pid, addresses: [try child.address("hearth_leaf") + 1])
        #expect(frames[0].function == nil)
    }

    @Test("shared libraries resolve, and dlopen'ed ones after a maps re-read")
    func sharedLibraries() throws {
        let fixtures = try Fixtures.get()
        let child = try FixtureProcess(fixtures.linked)
        defer { child.stop() }
        let symbolizer = makeSymbolizer { $0.mapsRefreshInterval = .zero }
        let function = try child.address("hearth_library_function")
        let frames = symbolizer.symbolizeUser(pid: child.pid, addresses: [function + 1, try child.address("main") + 1])
        #expect(frames.map(\.function) == ["hearth_library_function", "main"])
        #expect(frames[0].module == fixtures.library)
        let librarySymbols = try nmSymbols(fixtures.library)
        #expect(frames[0].moduleOffset == (try #require(librarySymbols["hearth_library_function"])).value + 1)

        // A symbolizer that may not re-read the maps yet sees the dlopen'ed library as unknown memory
        // until the process is forgotten.
        let slow = makeSymbolizer { $0.mapsRefreshInterval = .seconds(3600) }
        _ = slow.symbolizeUser(pid: child.pid, addresses: [function])
        // One that re-reads maps on every call, however seldom it may re-read them on a miss.
        let shortLived = makeSymbolizer {
            $0.mapsRefreshInterval = .seconds(3600)
            $0.mapsMaximumAge = .zero
        }
        _ = shortLived.symbolizeUser(pid: child.pid, addresses: [function])

        let loaded = try child.dlopen(fixtures.dlopenLibrary)
        let fresh = symbolizer.symbolizeUser(pid: child.pid, addresses: [loaded + 1])
        #expect(fresh[0].function == "hearth_library_function")
        #expect(fresh[0].module == fixtures.dlopenLibrary)

        let stale = slow.symbolizeUser(pid: child.pid, addresses: [loaded + 1])
        #expect(stale[0].function == nil)
        #expect(stale[0].module == "[unknown]")
        #expect(
            shortLived.symbolizeUser(pid: child.pid, addresses: [loaded + 1])[0].function == "hearth_library_function"
        )
        slow.forget(pid: child.pid)
        let reread = slow.symbolizeUser(pid: child.pid, addresses: [loaded + 1])
        #expect(reread[0].function == "hearth_library_function")
    }

    @Test("a stripped copy loaded first doesn't hide the full symbols of a file with the same build id")
    func sameBuildIDDifferentSymbols() throws {
        let fixtures = try Fixtures.get()
        let copy = "\(fixtures.directory)/prog_pie_stripped_copy_\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.copyItem(atPath: fixtures.pie, toPath: copy)
        defer { try? FileManager.default.removeItem(atPath: copy) }
        try runTool("strip", ["--strip-all", copy])
        #expect(try readelfBuildID(copy) == (try readelfBuildID(fixtures.pie)))
        let symbolizer = makeSymbolizer()

        let stripped = try FixtureProcess(copy)
        defer { stripped.stop() }
        let unnamed = symbolizer.symbolizeUser(pid: stripped.pid, addresses: [try stripped.address("hearth_leaf") + 1])
        #expect(unnamed[0].function == nil)

        let full = try FixtureProcess(fixtures.pie)
        defer { full.stop() }
        let named = symbolizer.symbolizeUser(pid: full.pid, addresses: [try full.address("hearth_leaf") + 1])
        #expect(named[0].function == "hearth_leaf")
        #expect(named[0].buildID == unnamed[0].buildID)
    }

    @Test("a binary in another mount namespace (a container) resolves through /proc/PID/root, debug file too")
    func containerRoot() throws {
        let fixtures = try Fixtures.get()
        #expect(!FileManager.default.fileExists(atPath: "/bin/prog_rooted"))
        // The launcher execs the program in place, so the child's PID is the program's.
        let child = try FixtureProcess(fixtures.launcher, arguments: [fixtures.rootDirectory, "/bin/prog_rooted"])
        defer { child.stop() }
        let symbolizer = makeSymbolizer()
        let frames = symbolizer.symbolizeUser(
            pid: child.pid,
            addresses: [try child.address("hearth_leaf") + 1, try child.address("hearth_static_helper") + 8]
        )
        // The binary is stripped: these names come from /bin/prog_rooted.debug, which exists only in the
        // container's root.
        #expect(frames.map(\.function) == ["hearth_leaf", "hearth_static_helper"])
        #expect(frames[0].module == "/bin/prog_rooted")
        let symbols = try nmSymbols("\(fixtures.rootDirectory)/bin/prog_rooted.debug")
        #expect(frames[0].moduleOffset == (try #require(symbols["hearth_leaf"])).value + 1)
        #expect(symbolizer.mappings(pid: child.pid).contains { $0.path == "/bin/prog_rooted" && $0.buildID != nil })
    }

    @Test("a binary deleted while running resolves through /proc/PID/map_files")
    func deletedBinary() throws {
        let fixtures = try Fixtures.get()
        let copy = "\(fixtures.directory)/prog_deleted_\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.copyItem(atPath: fixtures.pie, toPath: copy)
        let child = try FixtureProcess(copy)
        defer { child.stop() }
        try FileManager.default.removeItem(atPath: copy)
        let symbolizer = makeSymbolizer()
        let frames = symbolizer.symbolizeUser(pid: child.pid, addresses: [try child.address("hearth_middle") + 1])
        #expect(frames[0].function == "hearth_middle")
        #expect(frames[0].module == copy)
    }

    @Test("addresses outside every mapping, in anonymous memory and of exited processes stay unresolved")
    func unresolvable() throws {
        let symbolizer = makeSymbolizer()
        let size = 4096
        let memory = try #require(mmap(nil, size, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        defer { munmap(memory, size) }
        let anonymous = UInt64(UInt(bitPattern: memory))
        let frames = symbolizer.symbolizeUser(pid: getpid(), addresses: [anonymous + 16, 8])
        #expect(frames[0].function == nil)
        #expect(frames[0].module == "[anon]")
        #expect(frames[0].displayName == "[anon]+0x10")
        #expect(frames[1].module == "[unknown]")

        // A PID that doesn't exist (above the kernel's maximum).
        let gone = symbolizer.symbolizeUser(pid: Int32.max, addresses: [0x401000, 0x401000])
        #expect(gone.allSatisfy { $0.function == nil && $0.module == "[unknown]" })
        #expect(symbolizer.mappings(pid: Int32.max).isEmpty)
        #expect(symbolizer.statistics.userFramesUnresolved == 4)
    }

    @Test("JIT code in anonymous memory is named from /tmp/perf-PID.map, re-read as it grows")
    func perfMap() throws {
        let size = 1 << 16
        let memory = try #require(mmap(nil, size, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        defer { munmap(memory, size) }
        let start = UInt64(UInt(bitPattern: memory))
        // The "JIT" region lives in this process, so this process's perf map describes it; its entries
        // stay inside the region, so other tests' anonymous memory stays unnamed.
        let path = "/tmp/perf-\(getpid()).map"
        func write(_ lines: [String]) throws {
            try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        }
        try write([
            "\(String(start + 0x100, radix: 16)) 40 LazyCompile:*handleRequest /app/server.js:12",
            "0x\(String(start + 0x200, radix: 16)) 0x80 Interpreter@main",
        ])
        defer { try? FileManager.default.removeItem(atPath: path) }
        let symbolizer = makeSymbolizer { $0.mapsRefreshInterval = .zero }
        let frames = symbolizer.symbolizeUser(
            pid: getpid(),
            addresses: [start + 0x120, start + 0x280, start + 0x180, start + 0x1000]
        )
        #expect(
            frames.map(\.function) == ["LazyCompile:*handleRequest /app/server.js:12", "Interpreter@main", nil, nil]
        )
        #expect(frames.allSatisfy { $0.module == "[anon]" })

        try write([
            "\(String(start + 0x100, radix: 16)) 40 LazyCompile:*handleRequest /app/server.js:12",
            "\(String(start + 0x1000, radix: 16)) 10 compiled_later",
        ])
        let later = symbolizer.symbolizeUser(pid: getpid(), addresses: [start + 0x1008])
        #expect(later[0].function == "compiled_later")
    }

    @Test("symbolizes the test process itself: libc through .dynsym, Swift through the runtime demangler")
    func ownProcess() throws {
        let symbolizer = makeSymbolizer()
        let handle = dlopen(nil, RTLD_NOW)
        let qsortAddress = try address(dlsym(handle, "qsort"))
        let getpidAddress = try address(dlsym(handle, "getpid"))
        let stack = hearthMarkerFunction()
        let frames = symbolizer.symbolizeUser(pid: getpid(), addresses: [qsortAddress, getpidAddress + 1] + stack)
        #expect(frames[0].function == "qsort")
        #expect(frames[0].module.hasSuffix("libc.so.6"))
        #expect(frames[0].buildID != nil)
        #expect(frames[1].function == "getpid" || frames[1].function == "__getpid")
        let names = frames.dropFirst(2).compactMap(\.function)
        #expect(
            names.contains { $0.contains("HearthSymbolizerTests.hearthMarkerFunction() -> ") },
            "\(names)"
        )
        #expect(names.contains { $0.contains("SymbolizerProcessTests.ownProcess()") }, "\(names)")
    }

    @Test("tiny caches and concurrent callers still give the same answers")
    func evictionAndConcurrency() async throws {
        let fixtures = try Fixtures.get()
        let first = try FixtureProcess(fixtures.pie)
        defer { first.stop() }
        let second = try FixtureProcess(fixtures.linked)
        defer { second.stop() }
        let symbolizer = makeSymbolizer {
            $0.maxCachedFiles = 1
            $0.maxCachedProcesses = 1
        }
        let firstStack = [try first.address("hearth_leaf") + 1, try first.address("main") + 1]
        let secondStack = [try second.address("hearth_library_function") + 1, try second.address("hearth_middle") + 1]
        let qsort = try address(dlsym(dlopen(nil, RTLD_NOW), "qsort"))
        let ownPID = getpid()
        let firstPID = first.pid
        let secondPID = second.pid
        let results = try await withThrowingTaskGroup(of: Bool.self) { group in
            for task in 0..<8 {
                group.addTask {
                    for round in 0..<25 {
                        switch (task + round) % 3 {
                        case 0:
                            let frames = symbolizer.symbolizeUser(pid: firstPID, addresses: firstStack)
                            guard frames.map(\.function) == ["hearth_leaf", "main"] else { return false }
                        case 1:
                            let frames = symbolizer.symbolizeUser(pid: secondPID, addresses: secondStack)
                            guard frames.map(\.function) == ["hearth_library_function", "hearth_middle"] else {
                                return false
                            }
                        default:
                            let frames = symbolizer.symbolizeUser(pid: ownPID, addresses: [qsort])
                            guard frames[0].function == "qsort" else { return false }
                        }
                    }
                    return true
                }
            }
            return try await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results == Array(repeating: true, count: 8))
        var expectedFrames = 0
        for task in 0..<8 {
            for round in 0..<25 {
                expectedFrames += (task + round) % 3 == 2 ? 1 : 2
            }
        }
        #expect(symbolizer.statistics.userFramesResolved == expectedFrames)
        #expect(symbolizer.statistics.userFramesUnresolved == 0)
    }

    @Test("symbolizes the vDSO from the process's memory")
    func vdso() throws {
        let symbolizer = makeSymbolizer()
        let handle = dlopen("linux-vdso.so.1", RTLD_NOW | RTLD_NOLOAD)
        let function = try address(dlsym(handle, "__vdso_clock_gettime"))
        let frames = symbolizer.symbolizeUser(pid: getpid(), addresses: [function])
        #expect(frames[0].module == "[vdso]")
        #expect(frames[0].function == "__vdso_clock_gettime" || frames[0].function == "clock_gettime")
    }
}

/// The address dlsym returned, failing the test for NULL.
private func address(_ pointer: UnsafeMutableRawPointer?) throws -> UInt64 {
    guard let pointer else {
        throw ToolError(description: "dlsym returned NULL")
    }
    return UInt64(UInt(bitPattern: pointer))
}

/// A Swift function whose name must come back demangled from the test binary's symbol table.
@inline(never)
func hearthMarkerFunction() -> [UInt64] {
    Thread.callStackReturnAddresses.map { $0.uint64Value }
}
