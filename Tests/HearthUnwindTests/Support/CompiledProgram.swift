// CompiledProgram.swift: a C program compiled by the tests with gcc -O2 -fomit-frame-pointer, whose functions have
// known stack shapes (many callee-saved registers, alloca with a frame pointer, a frame too large for the row
// encoding), and `objdump -d` of it as the reference for what each instruction does to the stack.

import Foundation
import HearthTestSupport

/// The fixture program, built once per test process.
struct CompiledProgram: Sendable {
    let directory: String
    /// Built with `.eh_frame` (gcc's default asynchronous unwind tables).
    let executable: String
    /// Built with `-fno-asynchronous-unwind-tables -g`: the program's own functions are described only in
    /// `.debug_frame` (the C runtime's start files still bring `.eh_frame`).
    let debugFrameExecutable: String

    static let shared: Result<CompiledProgram, any Error> = Result { try CompiledProgram.build() }

    static func get() throws -> CompiledProgram {
        try Self.shared.get()
    }

    /// The functions the tests check, by name.
    static let functionNames = [
        "hearth_saves_registers", "hearth_frame_pointer", "hearth_big_frame", "hearth_leaf", "main",
    ]

    private static let source = #"""
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>

        __attribute__((noinline)) long hearth_leaf(long x) { return x * 3 + 1; }

        long (*volatile hearth_callback)(long) = hearth_leaf;

        /* Eleven values live across calls: every callee-saved register (RBP included) is pushed. */
        __attribute__((noinline)) long hearth_saves_registers(long a, long b, long c, long d, long e, long f) {
            long r1 = hearth_callback(a);
            long r2 = hearth_callback(b + r1);
            long r3 = hearth_callback(c + r2);
            long r4 = hearth_callback(d + r3);
            long r5 = hearth_callback(e + r4);
            long r6 = hearth_callback(f + r5);
            return a * r1 + b * r2 + c * r3 + d * r4 + e * r5 + f * r6;
        }

        /* alloca makes gcc keep a frame pointer even with -fomit-frame-pointer: the CFA moves to RBP. */
        __attribute__((noinline)) long hearth_frame_pointer(int n) {
            char *buffer = __builtin_alloca(n);
            memset(buffer, n, n);
            return hearth_callback(buffer[n / 2]);
        }

        /* A 40,000-byte frame: the CFA offset doesn't fit the row encoding's Int16. */
        __attribute__((noinline)) long hearth_big_frame(int n) {
            volatile char buffer[40000];
            buffer[n] = (char)n;
            return hearth_callback(buffer[n / 2]);
        }

        int main(int argc, char **argv) {
            (void)argv;
            long total = hearth_saves_registers(argc, 2, 3, 4, 5, 6);
            total += hearth_frame_pointer(argc * 64);
            total += hearth_big_frame(argc);
            printf("%ld\n", total);
            return 0;
        }
        """#

    private static func build() throws -> CompiledProgram {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("hearth-unwind-\(getpid())-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let sourcePath = "\(directory)/program.c"
        try Self.source.write(toFile: sourcePath, atomically: true, encoding: .utf8)
        let executable = "\(directory)/program"
        let debugFrameExecutable = "\(directory)/program-debug-frame"
        for (output, extra) in [(executable, []), (debugFrameExecutable, ["-fno-asynchronous-unwind-tables"])] {
            let compile = try ChildProcess.run(
                "/usr/bin/gcc",
                ["-O2", "-fomit-frame-pointer", "-g"] + extra + ["-o", output, sourcePath]
            )
            guard compile.status == 0 else {
                throw ReadelfError(message: "gcc failed: \(compile.output)")
            }
        }
        return CompiledProgram(directory: directory, executable: executable, debugFrameExecutable: debugFrameExecutable)
    }
}

/// One instruction of `objdump -d --no-show-raw-insn`: its address, mnemonic and operands.
struct DisassembledInstruction: Equatable {
    var address: UInt64
    var mnemonic: String
    var operands: String
}

enum Disassembly {
    /// The instructions of each function in `path`, by symbol name.
    static func functions(in path: String) throws -> [String: [DisassembledInstruction]] {
        let output = try ChildProcess.run("/usr/bin/objdump", ["-d", "--no-show-raw-insn", "-M", "att", path])
        guard output.status == 0 else {
            throw ReadelfError(message: "objdump failed: \(output.stderr)")
        }
        var functions: [String: [DisassembledInstruction]] = [:]
        var current: String?
        for line in output.stdout.split(separator: "\n") {
            // "0000000000001140 <hearth_leaf>:"
            if line.hasSuffix(">:"), let open = line.firstIndex(of: "<") {
                current = String(line[line.index(after: open)..<line.index(line.endIndex, offsetBy: -2)])
                continue
            }
            // "    1140:\tlea    0x1(%rdi,%rdi,2),%rax"
            let parts = line.split(separator: "\t", maxSplits: 1)
            guard let current, parts.count == 2,
                let address = UInt64(parts[0].trimmingCharacters(in: .whitespaces).dropLast(), radix: 16)
            else {
                continue
            }
            let text = parts[1].split(separator: "#", maxSplits: 1).first ?? ""
            let words = text.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            let mnemonic = words.first.map(String.init) ?? ""
            let operands = words.count > 1 ? words[1].trimmingCharacters(in: .whitespaces) : ""
            functions[current, default: []].append(
                DisassembledInstruction(address: address, mnemonic: mnemonic, operands: operands)
            )
        }
        return functions
    }
}
