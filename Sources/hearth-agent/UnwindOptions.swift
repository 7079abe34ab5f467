// UnwindOptions.swift: how user stacks are walked, shared by `profile` and `run`: the method and the memory the
// .eh_frame tables may take. The names, defaults and range are the operator→agent contract's (AgentCommandLine).

import ArgumentParser
import HearthAPI
import HearthSampler

extension AgentCommandLine.UnwindMethod: ExpressibleByArgument {}

struct UnwindOptions: ParsableArguments {
    @Option(
        name: .customLong(AgentCommandLine.Option.unwind.name),
        help: """
            How user stacks are walked: eh-frame (default: .eh_frame tables followed in the kernel, right without \
            frame pointers) or frame-pointers.
            """
    )
    var unwind: AgentCommandLine.UnwindMethod = .ehFrame

    @Option(
        name: .customLong(AgentCommandLine.Option.unwindTableMiB.name),
        help: """
            Kernel memory for .eh_frame tables, in MiB (8 bytes a row; libc takes about 0.2). When full, the \
            modules sampled least recently make room.
            """
    )
    var unwindTableMib: Int = AgentCommandLine.defaultUnwindTableMiB

    func validate() throws {
        try checked { try AgentCommandLine.check(unwindTableMiB: self.unwindTableMib) }
    }

    /// The sampler's setting: nil for frame pointers.
    var nativeUnwinding: NativeUnwinding? {
        guard self.unwind == .ehFrame else { return nil }
        return NativeUnwinding(rowBudget: NativeUnwinding.rows(mebibytes: self.unwindTableMib))
    }
}

/// `body`, with a contract error (a value out of range) turned into ArgumentParser's usage error.
func checked<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch {
        throw ValidationError("\(error)")
    }
}
