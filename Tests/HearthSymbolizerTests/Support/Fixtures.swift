// Fixtures.swift: the symbolizer tests' fixtures: C programs and a shared library compiled once with the system
// `cc` in every variant the symbolizer handles, readelf and nm as independent references, and a fixture child
// process that prints its function addresses and dlopens libraries on request.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// C programs and a shared library compiled once per test process with the system `cc`, in the variants
/// the symbolizer must handle.
struct Fixtures: Sendable {
    /// The directory holding every fixture.
    let directory: String
    /// PIE, `-g`.
    let pie: String
    /// Non-PIE (`ET_EXEC`), `-g`.
    let nonPIE: String
    /// PIE, `strip`ped: no `.symtab`, and `main`/`hearth_*` aren't in `.dynsym`.
    let stripped: String
    /// PIE, stripped, with a `.gnu_debuglink` to a `.debug` file next to it.
    let debugLinked: String
    /// PIE, stripped; its debug file lives under `debugRoot/.build-id/xx/rest.debug`.
    let buildIDDebug: String
    /// PIE, stripped, with MiniDebugInfo (`.gnu_debugdata`).
    let miniDebugInfo: String
    /// A debug directory (use in `Configuration.debugDirectories`).
    let debugRoot: String
    /// PIE, linked against `library`.
    let linked: String
    /// A shared library exporting `hearth_library_function`, linked by `linked`.
    let library: String
    /// Another copy of the shared library, only ever `dlopen`ed.
    let dlopenLibrary: String
    /// A root directory holding `/bin/prog_rooted` (a stripped static PIE) and its `.gnu_debuglink` debug
    /// file: run it with `launcher` and both paths exist only inside the process's root, as in a container.
    let rootDirectory: String
    /// `launcher ROOT PROGRAM`: runs PROGRAM in a new mount namespace whose root is ROOT.
    let launcher: String
    /// Freestanding executables of other classes and byte orders: ELF32 little-endian (i386), ELF64
    /// big-endian (s390x) and ELF32 big-endian (MIPS), each defining `f`, `g` and `_start`.
    let foreign: [String]

    static let shared: Result<Fixtures, any Error> = Result { try Fixtures.build() }

    static func get() throws -> Fixtures {
        try Self.shared.get()
    }

    private static let programSource = #"""
        #include <dlfcn.h>
        #include <stdio.h>
        #include <string.h>

        #ifdef HEARTH_LINKED
        extern int hearth_library_function(int);
        #endif

        __attribute__((noinline)) int hearth_leaf(int x) {
            volatile int y = x;
            for (int i = 0; i < 100; i++) y += i;
            return y;
        }

        __attribute__((noinline)) int hearth_middle(int x) { return hearth_leaf(x) + 1; }

        __attribute__((noinline)) static int hearth_static_helper(int x) { return hearth_middle(x) * 2; }

        int main(int argc, char **argv) {
            printf("variant %s %d\n", HEARTH_VARIANT, hearth_static_helper(argc));
            printf("hearth_leaf %p\n", (void *)hearth_leaf);
            printf("hearth_middle %p\n", (void *)hearth_middle);
            printf("hearth_static_helper %p\n", (void *)hearth_static_helper);
            printf("main %p\n", (void *)main);
        #ifdef HEARTH_LINKED
            printf("hearth_library_function %p\n", (void *)hearth_library_function);
            printf("library result %d\n", hearth_library_function(2));
        #endif
            printf("ready\n");
            fflush(stdout);
            char line[4096];
            while (fgets(line, sizeof line, stdin)) {
                line[strcspn(line, "\n")] = 0;
        #ifndef HEARTH_STATIC
                if (strncmp(line, "dlopen ", 7) == 0) {
                    void *handle = dlopen(line + 7, RTLD_NOW);
                    void *function = handle ? dlsym(handle, "hearth_library_function") : NULL;
                    printf("loaded %p\n", function);
                    fflush(stdout);
                }
        #endif
            }
            return 0;
        }
        """#

    private static let freestandingSource = #"""
        int f(int x) { return x + 1; }
        int g(int y) { return f(y) * 2; }
        void _start(void) { for (;;) g(1); }
        """#

    /// `launcher ROOT PROGRAM` runs PROGRAM (a path inside ROOT) with ROOT as the root of a new mount
    /// namespace, as a container runtime does (pivot_root onto a bind mount), so that PROGRAM's path in
    /// /proc/PID/maps is the one inside the container. Static, so it needs nothing from either root.
    private static let launcherSource = #"""
        #define _GNU_SOURCE
        #include <sched.h>
        #include <stdio.h>
        #include <sys/mount.h>
        #include <sys/syscall.h>
        #include <unistd.h>

        int main(int argc, char **argv) {
            if (argc != 3) return 2;
            if (unshare(CLONE_NEWNS) != 0) { perror("unshare"); return 1; }
            if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) { perror("mount"); return 1; }
            if (mount(argv[1], argv[1], NULL, MS_BIND | MS_REC, NULL) != 0) { perror("bind"); return 1; }
            if (chdir(argv[1]) != 0) { perror("chdir"); return 1; }
            if (syscall(SYS_pivot_root, ".", "old") != 0) { perror("pivot_root"); return 1; }
            if (chroot(".") != 0 || chdir("/") != 0) { perror("chroot"); return 1; }
            if (umount2("/old", MNT_DETACH) != 0) { perror("umount2"); return 1; }
            char *arguments[] = {argv[2], NULL};
            execv(argv[2], arguments);
            perror("execv");
            return 1;
        }
        """#

    private static let librarySource = #"""
        __attribute__((noinline)) static int hearth_library_static(int x) { return x * 3; }

        __attribute__((noinline)) int hearth_library_function(int x) { return hearth_library_static(x) + 1; }
        """#

    private static func build() throws -> Fixtures {
        // Remove fixtures left by earlier test processes that have exited.
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []
        where entry.hasPrefix("hearth-symbolizer-tests-") {
            if let pid = Int32(entry.dropFirst("hearth-symbolizer-tests-".count)), kill(pid, 0) != 0, errno == ESRCH {
                try? FileManager.default.removeItem(atPath: "/tmp/\(entry)")
            }
        }
        let directory = "/tmp/hearth-symbolizer-tests-\(getpid())"
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let programSource = "\(directory)/fixture.c"
        let librarySource = "\(directory)/library.c"
        try Self.programSource.write(toFile: programSource, atomically: true, encoding: .utf8)
        try Self.librarySource.write(toFile: librarySource, atomically: true, encoding: .utf8)

        func compile(_ name: String, _ flags: [String]) throws -> String {
            let output = "\(directory)/\(name)"
            try runTool(
                "cc",
                ["-g", "-O1", "-DHEARTH_VARIANT=\"\(name)\"", "-o", output, programSource] + flags + ["-ldl"],
                in: directory
            )
            return output
        }

        let library = "\(directory)/libhearthfixture.so"
        try runTool("cc", ["-g", "-O1", "-fPIC", "-shared", "-o", library, librarySource], in: directory)
        let dlopenLibrary = "\(directory)/libhearthdlopen.so"
        try runTool("cc", ["-g", "-O1", "-fPIC", "-shared", "-o", dlopenLibrary, librarySource], in: directory)

        let pie = try compile("prog_pie", ["-fPIE", "-pie"])
        let nonPIE = try compile("prog_nopie", ["-fno-pie", "-no-pie"])
        let stripped = try compile("prog_stripped", ["-fPIE", "-pie"])
        try runTool("strip", ["--strip-all", stripped], in: directory)

        let debugLinked = try compile("prog_debuglink", ["-fPIE", "-pie"])
        try runTool("objcopy", ["--only-keep-debug", "prog_debuglink", "prog_debuglink.debug"], in: directory)
        try runTool("strip", ["--strip-all", "prog_debuglink"], in: directory)
        try runTool("objcopy", ["--add-gnu-debuglink=prog_debuglink.debug", "prog_debuglink"], in: directory)

        let buildIDDebug = try compile("prog_buildid", ["-fPIE", "-pie"])
        let debugRoot = "\(directory)/debug"
        let buildID = try readelfBuildID(buildIDDebug)
        let buildIDDirectory = "\(debugRoot)/.build-id/\(buildID.prefix(2))"
        try FileManager.default.createDirectory(atPath: buildIDDirectory, withIntermediateDirectories: true)
        try runTool(
            "objcopy",
            ["--only-keep-debug", buildIDDebug, "\(buildIDDirectory)/\(buildID.dropFirst(2)).debug"],
            in: directory
        )
        try runTool("strip", ["--strip-all", buildIDDebug], in: directory)

        // MiniDebugInfo, per the GDB manual: the symbols .dynsym lacks, in an xz-compressed ELF in
        // .gnu_debugdata of a stripped binary.
        let miniDebugInfo = try compile("prog_minidebuginfo", ["-fPIE", "-pie"])
        try runTool("objcopy", ["--only-keep-debug", "prog_minidebuginfo", "mini.debug"], in: directory)
        try runTool("objcopy", ["--strip-debug", "--remove-section", ".comment", "mini.debug"], in: directory)
        try? FileManager.default.removeItem(atPath: "\(directory)/mini.debug.xz")
        try runTool("xz", ["mini.debug"], in: directory)
        try runTool("strip", ["--strip-all", "prog_minidebuginfo"], in: directory)
        try runTool(
            "objcopy",
            ["--add-section", ".gnu_debugdata=mini.debug.xz", "prog_minidebuginfo"],
            in: directory
        )

        let linked = try compile(
            "prog_linked",
            ["-fPIE", "-pie", "-DHEARTH_LINKED", "-L\(directory)", "-lhearthfixture", "-Wl,-rpath,\(directory)"]
        )
        // A container root: a stripped static PIE whose debug file (found through .gnu_debuglink) exists only
        // inside the root, and a launcher that enters it.
        let rootDirectory = "\(directory)/root"
        try FileManager.default.createDirectory(atPath: "\(rootDirectory)/bin", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: "\(rootDirectory)/old", withIntermediateDirectories: true)
        try runTool(
            "cc",
            [
                "-g", "-O1", "-DHEARTH_VARIANT=\"prog_rooted\"", "-DHEARTH_STATIC", "-fPIE", "-static-pie", "-o",
                "\(rootDirectory)/bin/prog_rooted", programSource,
            ],
            in: directory
        )
        let binDirectory = "\(rootDirectory)/bin"
        try runTool("objcopy", ["--only-keep-debug", "prog_rooted", "prog_rooted.debug"], in: binDirectory)
        try runTool("strip", ["--strip-all", "prog_rooted"], in: binDirectory)
        try runTool("objcopy", ["--add-gnu-debuglink=prog_rooted.debug", "prog_rooted"], in: binDirectory)
        let launcherSource = "\(directory)/launcher.c"
        try Self.launcherSource.write(toFile: launcherSource, atomically: true, encoding: .utf8)
        let launcher = "\(directory)/launcher"
        try runTool("cc", ["-static", "-O1", "-o", launcher, launcherSource], in: directory)

        let freestandingSource = "\(directory)/freestanding.c"
        try Self.freestandingSource.write(toFile: freestandingSource, atomically: true, encoding: .utf8)
        let freestanding = ["-O1", "-nostdlib", "-static", freestandingSource, "-o"]
        let i386 = "\(directory)/freestanding_i386"
        try runTool("cc", ["-m32", "-fno-pie", "-no-pie"] + freestanding + [i386], in: directory)
        // The Swift toolchain's clang and lld cross-compile without any sysroot.
        let s390x = "\(directory)/freestanding_s390x"
        try runTool("clang", ["-target", "s390x-unknown-linux-gnu", "-fuse-ld=lld"] + freestanding + [s390x])
        let mips = "\(directory)/freestanding_mips"
        try runTool(
            "clang",
            ["-target", "mips-unknown-linux-gnu", "-fuse-ld=lld", "-Wl,-e,_start"] + freestanding + [mips]
        )

        return Fixtures(
            directory: directory,
            pie: pie,
            nonPIE: nonPIE,
            stripped: stripped,
            debugLinked: debugLinked,
            buildIDDebug: buildIDDebug,
            miniDebugInfo: miniDebugInfo,
            debugRoot: debugRoot,
            linked: linked,
            library: library,
            dlopenLibrary: dlopenLibrary,
            rootDirectory: rootDirectory,
            launcher: launcher,
            foreign: [i386, s390x, mips]
        )
    }
}

struct ToolError: Error, CustomStringConvertible {
    var description: String
}

/// Runs a tool from PATH and returns its standard output; throws when it exits non-zero.
@discardableResult
func runTool(_ tool: String, _ arguments: [String], in directory: String? = nil) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [tool] + arguments
    if let directory {
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
    }
    let output = Pipe()
    let errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    let errorData = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw ToolError(
            description: "\(tool) \(arguments) exited \(process.terminationStatus): "
                + String(decoding: errorData, as: UTF8.self)
        )
    }
    return String(decoding: data, as: UTF8.self)
}

/// The GNU build id as `readelf -n` prints it: an independent check of the ELF reader.
func readelfBuildID(_ path: String) throws -> String {
    let notes = try runTool("readelf", ["-n", path])
    for line in notes.split(separator: "\n") {
        if let range = line.range(of: "Build ID: ") {
            return String(line[range.upperBound...]).trimmingCharacters(in: .whitespaces)
        }
    }
    throw ToolError(description: "no build id in \(path)")
}

/// `nm -S --defined-only`: name → (value, size).
func nmSymbols(_ path: String) throws -> [String: (value: UInt64, size: UInt64)] {
    var result: [String: (value: UInt64, size: UInt64)] = [:]
    for symbol in try nmSizedSymbols(["--defined-only", path]) {
        result[symbol.name] = (symbol.value, symbol.size)
    }
    return result
}

/// One line of `nm -S`: a symbol with a size.
struct NMSymbol {
    var value: UInt64
    var size: UInt64
    /// nm's type letter (`T`, `t`, `W`…).
    var type: Character
    var name: String
}

/// The sized symbols `nm -S ARGUMENTS` lists (lines without a size are skipped).
func nmSizedSymbols(_ arguments: [String]) throws -> [NMSymbol] {
    try runTool("nm", ["-S"] + arguments).split(separator: "\n").compactMap { line in
        let fields = line.split(separator: " ")
        guard fields.count == 4, fields[2].count == 1, let value = UInt64(fields[0], radix: 16),
            let size = UInt64(fields[1], radix: 16)
        else { return nil }
        return NMSymbol(value: value, size: size, type: fields[2].first!, name: String(fields[3]))
    }
}

/// A fixture program running as a child process. It prints its functions' addresses, then serves
/// `dlopen PATH` requests on standard input until standard input closes.
final class FixtureProcess {
    let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    /// Function name → runtime address, as printed by the child.
    private(set) var addresses: [String: UInt64] = [:]

    var pid: Int32 { self.process.processIdentifier }

    init(_ path: String, arguments: [String] = []) throws {
        self.process.executableURL = URL(fileURLWithPath: path)
        self.process.arguments = arguments
        self.process.standardInput = self.input
        self.process.standardOutput = self.output
        try self.process.run()
        while true {
            let line = try self.readLine()
            if line == "ready" {
                break
            }
            let fields = line.split(separator: " ")
            if fields.count == 2, fields[1].hasPrefix("0x"), let address = UInt64(fields[1].dropFirst(2), radix: 16) {
                self.addresses[String(fields[0])] = address
            }
        }
    }

    /// Asks the child to `dlopen` a library; returns the address of its `hearth_library_function`.
    func dlopen(_ library: String) throws -> UInt64 {
        self.input.fileHandleForWriting.write(Data("dlopen \(library)\n".utf8))
        let line = try self.readLine()
        guard line.hasPrefix("loaded 0x"), let address = UInt64(line.dropFirst("loaded 0x".count), radix: 16) else {
            throw ToolError(description: "unexpected reply \(line)")
        }
        return address
    }

    func readLine() throws -> String {
        var bytes: [UInt8] = []
        let fd = self.output.fileHandleForReading.fileDescriptor
        var byte: UInt8 = 0
        while true {
            let n = Glibc.read(fd, &byte, 1)
            if n < 0, errno == EINTR {
                continue
            }
            guard n == 1 else {
                throw ToolError(description: "child closed its output")
            }
            if byte == 0x0a {
                return String(decoding: bytes, as: UTF8.self)
            }
            bytes.append(byte)
        }
    }

    /// Closes the child's standard input (it exits on EOF) and waits for it.
    func stop() {
        try? self.input.fileHandleForWriting.close()
        self.process.waitUntilExit()
    }

    func address(_ name: String) throws -> UInt64 {
        try #require(self.addresses[name], "child didn't print \(name)")
    }
}
