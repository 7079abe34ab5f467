// CompiledProgramTests.swift: a program gcc compiles with -O2 -fomit-frame-pointer, checked instruction by
// instruction: replaying each function's pushes, pops and stack adjustments from `objdump -d` must give the CFA
// and saved-RBP rules the table holds at that instruction.

import Foundation
import HearthELF
import HearthUnwind
import Testing

/// Where the CFA and the saved RBP are, replayed from the instructions (the reference for the table).
private struct StackReplay {
    enum Base { case rsp, rbp }

    var base = Base.rsp
    /// CFA − RSP, while known.
    var depth: Int64? = 8
    /// For the RBP base: CFA − RBP.
    var rbpOffset: Int64 = 0
    var rbpSavedAt: Int64?

    static func immediate(_ text: Substring) -> Int64? {
        guard text.hasPrefix("$0x") else { return nil }
        return Int64(text.dropFirst(3), radix: 16)
    }

    /// What the table must say before the instruction runs, or nil when the replay lost track.
    var expected: UnwindRule? {
        switch self.base {
        case .rsp:
            guard let depth = self.depth else { return nil }
            guard let offset = Int16(exactly: depth) else { return .unsupported }
            return .cfaRSP(offset, rbp: self.rbpSavedAt.map { .saved(atCFAOffset: Int16($0)) } ?? .unchanged)
        case .rbp:
            return .cfaRBP(
                Int16(self.rbpOffset),
                rbp: self.rbpSavedAt.map { .saved(atCFAOffset: Int16($0)) } ?? .unchanged
            )
        }
    }

    /// Applies one instruction. Returns false at the end of the straight-line path (`ret`, `jmp`).
    mutating func apply(_ instruction: DisassembledInstruction) -> Bool {
        let operands = instruction.operands.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        switch instruction.mnemonic {
        case "ret", "jmp":
            return false
        case "push":
            self.depth = self.depth.map { $0 + 8 }
            if operands == ["%rbp"], let depth = self.depth {
                self.rbpSavedAt = -depth
            }
        case "pop":
            self.depth = self.depth.map { $0 - 8 }
            if operands == ["%rbp"] {
                self.rbpSavedAt = nil
                if self.base == .rbp {
                    self.base = .rsp
                    self.depth = 8
                }
            }
        case "sub", "add":
            guard operands.count == 2, operands[1] == "%rsp" else { break }
            if let value = Self.immediate(Substring(operands[0])) {
                self.depth = self.depth.map { instruction.mnemonic == "sub" ? $0 + value : $0 - value }
            } else {
                self.depth = nil
            }
        case "mov":
            if operands == ["%rsp", "%rbp"], let depth = self.depth {
                self.base = .rbp
                self.rbpOffset = depth
            } else if operands.count == 2, operands[1] == "%rsp" {
                self.depth = nil
            }
        case "lea":
            // lea -N(%rbp),%rsp in a frame-pointer epilogue: RSP is back at a known depth.
            if operands.count == 2, operands[1] == "%rsp", self.base == .rbp, operands[0].hasSuffix("(%rbp)") {
                let displacement = operands[0].dropLast(6)
                let negative = displacement.hasPrefix("-")
                if let value = Int64(displacement.dropFirst(negative ? 3 : 2), radix: 16) {
                    self.depth = self.rbpOffset + (negative ? value : -value)
                }
            } else if operands.count == 2, operands[1] == "%rsp" {
                self.depth = nil
            }
        case "leave":
            self.base = .rsp
            self.depth = 8
            self.rbpSavedAt = nil
        case "and":
            if operands.count == 2, operands[1] == "%rsp" {
                self.depth = nil
            }
        default:
            break
        }
        return true
    }
}

@Suite("Unwind tables of a gcc -O2 -fomit-frame-pointer program")
struct CompiledProgramTests {
    @Test(
        "replaying each function's stack operations gives the table's rule at every instruction",
        arguments: [false, true]
    )
    func replayedFunctions(fromDebugFrame: Bool) throws {
        let program = try CompiledProgram.get()
        let path = fromDebugFrame ? program.debugFrameExecutable : program.executable
        let table = try UnwindTable(contentsOf: path)
        let functions = try Disassembly.functions(in: path)
        if fromDebugFrame {
            // hearth_leaf, hearth_saves_registers, hearth_frame_pointer, hearth_big_frame and main.
            #expect(table.statistics.debugFrameFDEs == 5)
        } else {
            #expect(table.statistics.debugFrameFDEs == 0)
        }
        #expect(table.statistics.malformedFDEs == 0)
        var checked = 0
        var rules: [String: Set<UnwindRule>] = [:]
        for name in ["hearth_saves_registers", "hearth_frame_pointer", "hearth_leaf", "main"] {
            let instructions = try #require(functions[name], "no \(name) in the disassembly")
            var replay = StackReplay()
            for instruction in instructions {
                if let expected = replay.expected {
                    let ours = try #require(table.row(for: instruction.address)).rule
                    var comparable = ours
                    if replay.rbpSavedAt == nil {
                        // After `pop %rbp` gcc leaves RBP's save slot in the CFI (it still holds the value).
                        comparable.rbp = .unchanged
                    }
                    #expect(
                        comparable == expected,
                        "\(name) at 0x\(String(instruction.address, radix: 16)) \(instruction.mnemonic) \(instruction.operands)"
                    )
                    rules[name, default: []].insert(ours)
                    checked += 1
                }
                guard replay.apply(instruction) else { break }
            }
        }
        #expect(checked > 40)
        // The shapes the functions were written to have.
        #expect(rules["hearth_leaf"] == [.cfaRSP(8)])
        let saves = rules["hearth_saves_registers"] ?? []
        #expect(saves.contains { $0.kind == .cfaRSP && $0.cfaOffset == 56 && $0.rbp.savedAtCFAOffset != nil })
        #expect((rules["hearth_frame_pointer"] ?? []).contains { $0.kind == .cfaRBP && $0.cfaOffset == 16 })
    }

    @Test("a frame larger than the encoding's CFA offset becomes a counted unsupported row")
    func bigFrame() throws {
        let program = try CompiledProgram.get()
        let table = try UnwindTable(contentsOf: program.executable)
        let functions = try Disassembly.functions(in: program.executable)
        let instructions = try #require(functions["hearth_big_frame"])
        let start = try #require(instructions.first?.address)
        let end = try #require(instructions.last?.address)
        #expect(table.row(for: start)?.rule == .cfaRSP(8))
        let inside = table.rows.filter { $0.address > start && $0.address <= end }
        #expect(inside.contains { $0.rule == .unsupported })
        #expect(table.statistics.unsupportedRows >= 1)
        #expect(table.statistics.unsupported.keys.contains(.cfaOffsetRange))
    }

    @Test("_start is the root frame and the .plt uses the PLT command")
    func startAndPLT() throws {
        let program = try CompiledProgram.get()
        let table = try UnwindTable(contentsOf: program.executable)
        let elf = try ELFFile(path: program.executable)
        let start = try #require(try elf.functionSymbols().first { $0.name == "_start" })
        #expect(table.row(for: start.value)?.rule == .stop)
        let plt = try #require(elf.section(named: ".plt"))
        #expect(table.row(for: plt.address)?.rule == .cfaRSP(16))
        #expect(table.row(for: plt.address + 6)?.rule == .cfaRSP(24))
        if plt.size > 16 {
            #expect(table.row(for: plt.address + 16)?.rule.kind == .plt)
        }
        #expect(table.statistics.malformedFDEs == 0)
        #expect(table.key.buildID == elf.buildID)
        #expect(table.key.buildID != nil)
    }
}
