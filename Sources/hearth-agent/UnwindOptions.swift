// UnwindOptions.swift: how user stacks are walked, shared by `profile` and `run`: the method and the memory the
// .eh_frame tables may take.

import ArgumentParser
import HearthSampler

/// How user stacks are walked.
enum UnwindMethod: String, ExpressibleByArgument, CaseIterable {
    /// Frame pointers (`bpf_get_stackid`): breaks at every function built without them.
    case framePointers = "frame-pointers"
    /// `.eh_frame` tables compiled in user space and followed in the kernel.
    case ehFrame = "eh-frame"
}

struct UnwindOptions: ParsableArguments {
    @Option(
        help: """
            How user stacks are walked: eh-frame (default: .eh_frame tables followed in the kernel, right without \
            frame pointers) or frame-pointers.
            """
    )
    var unwind: UnwindMethod = .ehFrame

    @Option(
        help: """
            Kernel memory for .eh_frame tables, in MiB (8 bytes a row; libc takes about 0.2). When full, the \
            modules sampled least recently make room.
            """
    )
    var unwindTableMib: Int = 4

    func validate() throws {
        guard (1...1024).contains(self.unwindTableMib) else {
            throw ValidationError(
                "--unwind-table-mib \(self.unwindTableMib) is out of range: use 1 to 1024 (4 is the default)"
            )
        }
    }

    /// The sampler's setting: nil for frame pointers.
    var nativeUnwinding: NativeUnwinding? {
        guard self.unwind == .ehFrame else { return nil }
        return NativeUnwinding(rowBudget: NativeUnwinding.rows(mebibytes: self.unwindTableMib))
    }
}
