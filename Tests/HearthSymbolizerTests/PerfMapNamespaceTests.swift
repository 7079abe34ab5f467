// PerfMapNamespaceTests.swift: perf maps of processes in other pid and mount namespaces: the map named with the
// pid the process sees, read inside its root, and the fallback to the host's /tmp; on a fabricated procfs, and on
// a real process in a new pid and mount namespace (with a /tmp of its own) that maps JIT-like memory.

import Foundation
import Logging
import Testing

@testable import HearthSymbolizer

#if canImport(Glibc)
import Glibc
#endif

/// A fabricated procfs holding process 4242: an anonymous executable mapping at `jitStart`, a status whose
/// `NSpid:` is `namespacePID`, an empty `root/tmp` and the host's `1/root/tmp`.
private struct FakeNamespacedProcess {
    let procRoot: String
    let pid: Int32 = 4242
    let jitStart: UInt64 = 0x7f00_0000_0000

    init(namespacePID: Int32?) throws {
        self.procRoot = NSTemporaryDirectory() + "hearth-perfmap-proc-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        for directory in ["\(self.pid)/root/tmp", "1/root/tmp"] {
            try FileManager.default.createDirectory(
                atPath: "\(self.procRoot)/\(directory)",
                withIntermediateDirectories: true
            )
        }
        let end = String(self.jitStart + 0x10000, radix: 16)
        try "\(String(self.jitStart, radix: 16))-\(end) r-xp 00000000 00:00 0\n".write(
            toFile: "\(self.procRoot)/\(self.pid)/maps",
            atomically: true,
            encoding: .utf8
        )
        let nspid = namespacePID.map { "NSpid:\t\(self.pid)\t\($0)\n" } ?? ""
        try "Name:\tnode\nTgid:\t\(self.pid)\nPid:\t\(self.pid)\n\(nspid)PPid:\t1\n".write(
            toFile: "\(self.procRoot)/\(self.pid)/status",
            atomically: true,
            encoding: .utf8
        )
    }

    /// Writes a perf map at `path` (relative to the procfs) naming `jitStart + offset` (64 bytes) `name`.
    func writeMap(_ path: String, name: String, offset: UInt64 = 0x100) throws {
        try "\(String(self.jitStart + offset, radix: 16)) 40 \(name)\n".write(
            toFile: "\(self.procRoot)/\(path)",
            atomically: true,
            encoding: .utf8
        )
    }

    func symbolizer() -> Symbolizer {
        var configuration = Symbolizer.Configuration()
        configuration.procRoot = self.procRoot
        configuration.mapsRefreshInterval = .zero
        return Symbolizer(
            configuration: configuration,
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        )
    }

    func name(with symbolizer: Symbolizer, offset: UInt64 = 0x120) -> String? {
        symbolizer.symbolizeUser(pid: self.pid, addresses: [self.jitStart + offset])[0].function
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: self.procRoot)
    }
}

@Suite("Perf maps of processes in other namespaces")
struct PerfMapNamespaceTests {
    @Test("NSpid: the last field is the pid in the process's own namespace; no line, no pid")
    func namespacePIDParsing() {
        #expect(State.namespacePID(status: Array("Name:\tx\nNSpid:\t31337\t208\t1\nPPid:\t0\n".utf8)) == 1)
        #expect(State.namespacePID(status: Array("NSpid:\t4242\n".utf8)) == 4242)
        #expect(State.namespacePID(status: Array("Name:\tx\nPid:\t5\n".utf8)) == nil)
        #expect(State.namespacePID(status: Array("NSpid:\t\n".utf8)) == nil)
        #expect(State.perfMapPath(pid: 4242, status: Array("NSpid:\t4242\t17\n".utf8)) == "/tmp/perf-17.map")
        #expect(State.perfMapPath(pid: 1, status: nil) == "/tmp/perf-1.map")
    }

    @Test("a namespaced process's map is read as /tmp/perf-NSPID.map inside its root, not by its host pid")
    func namespacedMapInsideRoot() throws {
        let process = try FakeNamespacedProcess(namespacePID: 17)
        defer { process.remove() }
        try process.writeMap("4242/root/tmp/perf-17.map", name: "LazyCompile:*inContainer")
        // Decoys: the host pid inside the root, and the namespaced pid in the host's /tmp.
        try process.writeMap("4242/root/tmp/perf-4242.map", name: "wrong:hostPIDInsideRoot")
        try process.writeMap("1/root/tmp/perf-17.map", name: "wrong:namespacePIDOnHost")
        #expect(process.name(with: process.symbolizer()) == "LazyCompile:*inContainer")
    }

    @Test(
        "the host's /tmp/perf-PID.map is never read for a process with a root of its own; its own map, created later, is"
    )
    func hostTmpIsNotTheProcesssToDescribe() throws {
        let process = try FakeNamespacedProcess(namespacePID: 17)
        defer { process.remove() }
        let symbolizer = process.symbolizer()
        #expect(process.name(with: symbolizer) == nil)
        // Any host user can write the host's /tmp: a file there must not name a container's frames.
        try process.writeMap("1/root/tmp/perf-4242.map", name: "plantedOnHost")
        try process.writeMap("1/root/tmp/perf-17.map", name: "plantedOnHostToo")
        #expect(process.name(with: symbolizer) == nil)
        // Maps are looked at again on a miss: one the container writes later is found.
        try process.writeMap("4242/root/tmp/perf-17.map", name: "writtenInContainer", offset: 0x1000)
        #expect(process.name(with: symbolizer, offset: 0x1008) == "writtenInContainer")
        #expect(process.name(with: symbolizer) == nil)
    }

    @Test("without an NSpid line (kernels before 4.1) the pid names the map inside the root")
    func noNamespacePID() throws {
        let process = try FakeNamespacedProcess(namespacePID: nil)
        defer { process.remove() }
        try process.writeMap("4242/root/tmp/perf-4242.map", name: "sameNamespace")
        #expect(process.name(with: process.symbolizer()) == "sameNamespace")
    }

    /// `unshare` makes pid and mount namespaces: it needs root, which CI has.
    static var canUnshare: Bool { geteuid() == 0 || ProcessInfo.processInfo.environment["HEARTH_REQUIRE_BPF"] == "1" }

    /// In the new namespaces: a private /tmp (from `/`: a working directory under /tmp would vanish under it, and
    /// pyenv's python3 shim fails there), then Debian's python3 maps anonymous executable memory, describes it in
    /// /tmp/perf-<its pid>.map, prints that pid and the address, and waits for its stdin to close.
    static let namespacedJIT = """
        cd / && mount -t tmpfs hearth-tmp /tmp && exec /usr/bin/python3 -c '
        import ctypes, mmap, os, sys
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
        memory = mmap.mmap(-1, 1 << 16, flags=flags, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        address = ctypes.addressof(ctypes.c_char.from_buffer(memory))
        with open(f"/tmp/perf-{os.getpid()}.map", "w") as perf_map:
            perf_map.write(f"{address + 0x100:x} 40 jit_in_namespace\\n")
        print(os.getpid(), hex(address), flush=True)
        sys.stdin.read()
        '
        """

    @Test(
        "a real process in new pid and mount namespaces: its JIT code is named from its own /tmp/perf-NSPID.map",
        .enabled(if: Self.canUnshare, "needs root for unshare")
    )
    func realNamespace() throws {
        let unshare = Process()
        unshare.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        unshare.arguments = ["--pid", "--fork", "--mount-proc", "/bin/sh", "-c", Self.namespacedJIT]
        let input = Pipe()
        let output = Pipe()
        unshare.standardInput = input
        unshare.standardOutput = output
        try unshare.run()
        defer {
            try? input.fileHandleForWriting.close()
            unshare.waitUntilExit()
        }
        let line = try readLine(output.fileHandleForReading.fileDescriptor)
        let fields = line.split(separator: " ")
        let namespacePID = try #require(fields.first.flatMap { Int32($0) }, "unexpected output: \(line)")
        let address = try #require(fields.last.flatMap { UInt64($0.dropFirst(2), radix: 16) })
        // unshare --fork's child is python3 (sh execs it): the host pid of the namespace's init.
        let pid = try #require(children(of: unshare.processIdentifier).first, "no child of unshare")
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        let nspid = try #require(status.split(separator: "\n").first { $0.hasPrefix("NSpid:") })
        #expect(nspid.split(whereSeparator: \.isWhitespace).dropFirst().map { Int32($0) } == [pid, namespacePID])
        #expect(pid != namespacePID)
        // The map exists only in the namespace's /tmp.
        #expect(!FileManager.default.fileExists(atPath: "/tmp/perf-\(namespacePID).map"))
        #expect(!FileManager.default.fileExists(atPath: "/tmp/perf-\(pid).map"))

        let symbolizer = Symbolizer(logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let frames = symbolizer.symbolizeUser(pid: pid, addresses: [address + 0x120, address + 0x200])
        #expect(frames[0].function == "jit_in_namespace")
        #expect(frames[1].function == nil)
        #expect(frames.allSatisfy { $0.module == "[anon]" })
    }
}

/// One line the child wrote, without its newline.
private func readLine(_ fd: Int32) throws -> String {
    var bytes: [UInt8] = []
    var byte: UInt8 = 0
    while true {
        let n = Glibc.read(fd, &byte, 1)
        if n < 0, errno == EINTR { continue }
        guard n == 1 else { throw ToolError(description: "child closed its output after \(bytes.count) bytes") }
        if byte == 0x0a { return String(decoding: bytes, as: UTF8.self) }
        bytes.append(byte)
    }
}

/// The pids whose parent is `parent`, from /proc/PID/stat (the field after the parenthesized name).
private func children(of parent: Int32) throws -> [Int32] {
    try FileManager.default.contentsOfDirectory(atPath: "/proc").compactMap { entry in
        guard let pid = Int32(entry),
            let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 && Int32(fields[1]) == parent ? pid : nil
    }
}
