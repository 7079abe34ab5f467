// SymbolizedFrame.swift: what the symbolizer returns: a symbolized stack frame (function, module, addresses,
// build id) with its display name, and an executable file mapping of a process, for pprof.

/// One symbolized stack frame.
public struct SymbolizedFrame: Hashable, Sendable {
    /// The demangled function name, or nil when the address could not be resolved.
    public var function: String?
    /// The file path as mapped in the process (without a " (deleted)" suffix), `[vdso]`, `[anon]` for
    /// anonymous memory such as JIT code, `[unknown]` for an address outside every mapping, or for kernel
    /// frames `[kernel.kallsyms]` or a kernel module name such as `[ext4]`.
    public var module: String
    /// The runtime virtual address, exactly as passed in (a return address stays a return address).
    public var address: UInt64
    /// The address relative to the ELF file: `address` minus the load bias, which is the link-time address
    /// `st_value` and `nm` use. For mappings whose file could not be read, the file offset of the address.
    /// For kernel frames, the address itself.
    public var moduleOffset: UInt64
    /// The lowercase hex GNU build id of the module, when known.
    public var buildID: String?
    /// Whether the frame is a kernel frame.
    public var isKernel: Bool

    /// Creates a frame.
    public init(
        function: String?,
        module: String,
        address: UInt64,
        moduleOffset: UInt64,
        buildID: String? = nil,
        isKernel: Bool = false
    ) {
        self.function = function
        self.module = module
        self.address = address
        self.moduleOffset = moduleOffset
        self.buildID = buildID
        self.isKernel = isKernel
    }

    /// The function name, or `basename(module)+0xoffset` (for example `libfoo.so+0x1a2b`) when unresolved.
    public var displayName: String {
        if let function = self.function {
            return function
        }
        let base = self.module.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init)
        return "\(base ?? self.module)+0x\(String(self.moduleOffset, radix: 16))"
    }
}

/// An executable, file-backed mapping of a process, for pprof `Mapping` entries.
public struct ProcessMapping: Hashable, Sendable {
    /// The first address of the mapping.
    public var start: UInt64
    /// The address just past the mapping.
    public var end: UInt64
    /// The file offset mapped at `start`.
    public var fileOffset: UInt64
    /// The file path as mapped in the process (without a " (deleted)" suffix).
    public var path: String
    /// The lowercase hex GNU build id of the file, when it could be read.
    public var buildID: String?

    /// Creates a mapping.
    public init(start: UInt64, end: UInt64, fileOffset: UInt64, path: String, buildID: String?) {
        self.start = start
        self.end = end
        self.fileOffset = fileOffset
        self.path = path
        self.buildID = buildID
    }
}
