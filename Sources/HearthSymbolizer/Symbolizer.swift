// Symbolizer.swift: sampled user and kernel addresses turned into function names: per-process maps, ELF symbol
// tables (debug files, MiniDebugInfo, perf maps, the vDSO), kallsyms and demangling, behind one Mutex with bounded
// LRU caches, so a library mapped by many processes is parsed once.

import HearthELF
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Turns sampled user and kernel addresses into function names.
///
/// User addresses are resolved through the process's `/proc/PID/maps`, the mapped ELF files (opened
/// through `/proc/PID/root` so binaries inside containers resolve, or `/proc/PID/map_files` for deleted
/// ones), their `.symtab` and `.dynsym`, separate debug files found by build id or `.gnu_debuglink`, and
/// MiniDebugInfo (`.gnu_debugdata`).
/// Kernel addresses are resolved through `/proc/kallsyms`. Names are demangled with ``Demangler``; an
/// address that can't be named becomes a frame with `function == nil` whose
/// ``SymbolizedFrame/displayName`` is `module+0xoffset`.
///
/// All state (per-process maps, per-file symbol tables, kallsyms) lives behind one `Mutex`, and caches are
/// bounded LRUs: symbol tables are found by GNU build id and by the file's (device, inode, size, mtime), so
/// one library mapped by many processes (or many containers from one image) is parsed once. Symbol tables
/// and demangled names share a byte budget, ``Configuration/maxSymbolBytes``: a table keeps 16 bytes per
/// function and an open descriptor of its file, and names are read from the file when an address first
/// resolves to them. Processes refer to tables by key, so an evicted table is freed (and its descriptor
/// closed) at once and loaded again when needed. Calls do file I/O while holding the lock; call them from a
/// thread that may block, not from the cooperative pool.
public final class Symbolizer: Sendable {
    /// Symbolizer options.
    public struct Configuration: Sendable {
        /// The procfs mount to read `PID/maps`, `PID/root`, `PID/map_files`, `PID/mem` and `kallsyms` from.
        /// Default `/proc`.
        public var procRoot: String = "/proc"
        /// The most ELF files whose symbol tables are kept. Default 256.
        public var maxCachedFiles: Int = 256
        /// The byte budget of everything cached about symbols: symbol tables (of files, the vDSO and perf
        /// maps) get three quarters, demangled names one quarter. Least recently used entries are evicted to
        /// stay within it; a table larger than its share is used for the call that loaded it and not kept.
        /// A table costs 16 bytes per function (names stay in the file, which is kept open while the table is
        /// cached; swift-frontend's 300,000 symbols take about 4 MiB) plus the string tables of in-memory
        /// images (MiniDebugInfo, vDSO, perf maps). Default 16 MiB.
        public var maxSymbolBytes: Int = 16 << 20
        /// The most processes whose memory maps are kept. Default 4096.
        public var maxCachedProcesses: Int = 4096
        /// The bytes the kept processes' maps may take together (about 100 bytes a mapping); the processes sampled
        /// least recently are forgotten first. Default 4 MiB.
        public var maxProcessBytes: Int = 4 << 20
        /// The shortest time between two re-reads of one process's maps, which happen when an address falls
        /// outside every known mapping (after `dlopen`, for example). Default one second.
        public var mapsRefreshInterval: Duration = .seconds(1)
        /// How long one reading of a process's maps is trusted at all: older maps are re-read on the next
        /// call, so a process that `exec`s in place (a container entrypoint script) or a recycled PID isn't
        /// symbolized with stale mappings for long. Default 30 seconds.
        public var mapsMaximumAge: Duration = .seconds(30)
        /// Directories searched for separate debug files, inside the process's root: `DIR/.build-id/xx/rest.debug`
        /// and `DIR/<directory of the binary>/<debuglink name>`. Default `["/usr/lib/debug"]`.
        public var debugDirectories: [String] = ["/usr/lib/debug"]
        /// The limits one process's perf map is read within (bytes of the file, of the table built, of a line).
        /// The table limit (an eighth of ``maxSymbolBytes``) stays well below the tables' share so that a map's table
        /// is always cached rather than parsed again on every miss.
        var perfMapLimits: PerfMapReader.Limits {
            var limits = PerfMapReader.Limits()
            limits.maximumTableBytes = max(64 << 10, self.maxSymbolBytes / 8)
            return limits
        }
        /// The most mappings kept of one process (60,000 mappings of one file must not cost the agent 60,000
        /// entries); mappings beyond it are not symbolized and the process is counted as truncated.
        public var maxMappingsPerProcess: Int = 8192

        /// Creates the default configuration.
        public init() {}
    }

    /// Frame counters since the symbolizer was created.
    public struct Statistics: Hashable, Sendable {
        /// User frames given a function name.
        public var userFramesResolved = 0
        /// User frames left as `module+0xoffset`.
        public var userFramesUnresolved = 0
        /// Kernel frames given a function name.
        public var kernelFramesResolved = 0
        /// Kernel frames left unresolved (for example when `kptr_restrict` hides kallsyms addresses).
        public var kernelFramesUnresolved = 0
        /// Files a process named that were refused unread: FIFOs, sockets, devices and directories (a debug link
        /// to a FIFO would otherwise block the agent, a link to a device never end).
        public var refusedFiles = 0
        /// Inputs cut to their byte limits: perf maps and process maps longer than allowed (what was read within
        /// the limit is used).
        public var truncatedInputs = 0

        /// Creates zeroed counters.
        public init() {}
    }

    let configuration: Configuration
    let logger: Logger
    let state: Mutex<State>

    /// Creates a symbolizer. Nothing is read until the first call.
    public init(configuration: Configuration = .init(), logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.state = Mutex(State(configuration: configuration, logger: logger))
    }

    /// Frame counters since the symbolizer was created.
    public var statistics: Statistics {
        self.state.withLock { $0.statistics }
    }

    /// Bytes held by cached symbol tables and demangled names (at most ``Configuration/maxSymbolBytes``).
    var cachedSymbolBytes: Int {
        self.state.withLock { $0.cachedSymbolBytes }
    }

    /// The number of symbol tables cached.
    var cachedModuleCount: Int {
        self.state.withLock { $0.modules.count }
    }

    // MARK: User space

    /// Symbolizes a user-space stack of process `pid`, leaf first.
    ///
    /// `addresses[0]` is the sampled instruction pointer and is looked up as is; the others are return
    /// addresses, which point just after a call instruction (possibly into the next function), so
    /// `address - 1` is looked up for them. The returned frames carry the addresses as given.
    ///
    /// - Parameters:
    ///   - pid: The process, as seen from `procRoot`'s PID namespace.
    ///   - addresses: Runtime addresses, leaf first.
    /// - Returns: One frame per address, in the same order.
    public func symbolizeUser(pid: Int32, addresses: [UInt64]) -> [SymbolizedFrame] {
        if addresses.isEmpty {
            return []
        }
        let now = ContinuousClock.now
        return self.state.withLock { state in
            defer { state.unpinAll() }
            var process = state.processes.remove(pid) ?? state.readProcess(pid: pid, now: now)
            if process.lastRead.duration(to: now) > self.configuration.mapsMaximumAge {
                process = state.readProcess(pid: pid, now: now)
            }
            var frames: [SymbolizedFrame] = []
            frames.reserveCapacity(addresses.count)
            for (position, address) in addresses.enumerated() {
                let lookupAddress = position == 0 || address == 0 ? address : address - 1
                var index = ProcMaps.index(of: lookupAddress, in: process.mappings)
                if index == nil, process.lastRead.duration(to: now) >= self.configuration.mapsRefreshInterval {
                    process = state.readProcess(pid: pid, now: now)
                    index = ProcMaps.index(of: lookupAddress, in: process.mappings)
                }
                let frame: SymbolizedFrame
                if let index {
                    frame = state.symbolize(
                        address: address,
                        lookupAddress: lookupAddress,
                        mappingIndex: index,
                        process: &process,
                        pid: pid,
                        now: now
                    )
                } else {
                    frame = SymbolizedFrame(function: nil, module: "[unknown]", address: address, moduleOffset: address)
                }
                if frame.function == nil {
                    state.statistics.userFramesUnresolved += 1
                } else {
                    state.statistics.userFramesResolved += 1
                }
                frames.append(frame)
            }
            state.processes.set(pid, process, cost: process.byteCount)
            return frames
        }
    }

    /// The executable, file-backed mappings of process `pid`, with build ids where the files could be read.
    /// Uses the cached maps when the process is known (read them otherwise).
    public func mappings(pid: Int32) -> [ProcessMapping] {
        let now = ContinuousClock.now
        return self.state.withLock { state in
            defer { state.unpinAll() }
            var process = state.processes.remove(pid) ?? state.readProcess(pid: pid, now: now)
            var result: [ProcessMapping] = []
            for index in process.mappings.indices {
                let mapping = process.mappings[index]
                guard mapping.isExecutable, mapping.kind == .file else {
                    continue
                }
                let resolution = state.resolution(of: index, process: &process, pid: pid)
                result.append(
                    ProcessMapping(
                        start: mapping.start,
                        end: mapping.end,
                        fileOffset: mapping.fileOffset,
                        path: mapping.path,
                        buildID: resolution?.module.buildID
                    )
                )
            }
            state.processes.set(pid, process, cost: process.byteCount)
            return result
        }
    }

    /// Drops the cached maps of process `pid` (call when it exits). File symbol tables stay cached.
    public func forget(pid: Int32) {
        _ = self.state.withLock { $0.processes.remove(pid) }
    }
}

// MARK: Lookups, under the lock: the state is the context of every step of a call.

extension State {
    mutating func readProcess(pid: Int32, now: ContinuousClock.Instant) -> ProcessState {
        let path = "\(self.configuration.procRoot)/\(pid)/maps"
        do {
            // Sampled addresses are always in executable memory: the rest of the maps is never looked at.
            let (mappings, truncated) = try ProcMaps.read(
                path: path,
                maximumMappings: self.configuration.maxMappingsPerProcess,
                keep: { $0.isExecutable }
            )
            if truncated { self.statistics.truncatedInputs += 1 }
            return ProcessState(mappings: mappings, lastRead: now)
        } catch {
            self.logger.debug(
                "cannot read process maps",
                metadata: ["pid": "\(pid)", "error": "\(error)"]
            )
            return ProcessState(mappings: [], lastRead: now)
        }
    }

    mutating func symbolize(
        address: UInt64,
        lookupAddress: UInt64,
        mappingIndex: Int,
        process: inout ProcessState,
        pid: Int32,
        now: ContinuousClock.Instant
    ) -> SymbolizedFrame {
        let mapping = process.mappings[mappingIndex]
        let resolution = self.resolution(
            of: mappingIndex,
            process: &process,
            pid: pid
        )
        guard let (module, bias) = resolution else {
            // JIT code: runtimes (V8 with --perf-basic-prof, .NET, the JVM through perf-map-agent) describe
            // it in /tmp/perf-PID.map.
            var function: String?
            if mapping.isAnonymousMemory {
                let table = self.perfMapTable(of: process)
                function = table?.lookup(lookupAddress)?.name
                let evicted = table == nil && process.perfMap?.tableSerial != nil
                // Runtimes append to the map as they compile: on a miss, look again, and re-parse only if the
                // file changed or its table was evicted. Both are rate-limited (a map cut at its limits ten times
                // more): a large map whose table other modules keep evicting must not be parsed on every frame.
                let interval =
                    process.perfMap?.truncated == true
                    ? self.configuration.mapsRefreshInterval * 10 : self.configuration.mapsRefreshInterval
                if function == nil,
                    process.perfMap.map({ $0.checkedAt.duration(to: now) >= interval }) ?? true
                {
                    self.refreshPerfMap(
                        of: &process,
                        pid: pid,
                        now: now,
                        reload: table == nil && process.perfMap?.tableSerial != nil
                    )
                    function =
                        self.perfMapTable(of: process)?
                        .lookup(lookupAddress)?.name
                }
            }
            return SymbolizedFrame(
                function: function,
                module: mapping.moduleName,
                address: address,
                moduleOffset: address &- mapping.start &+ mapping.fileOffset
            )
        }
        var function: String?
        if let index = module.symbols.index(containing: lookupAddress &- bias) {
            // Demangling (Swift's especially) costs far more than the lookups, and hot functions recur in
            // every stack: keep demangled names per (module, symbol).
            let key = NameKey(module: module.serial, symbol: index)
            if let cached = self.demangledNames.get(key) {
                function = cached
            } else if let name = module.symbols.name(at: index) {
                let demangled = Demangler.demangle(name)
                self.demangledNames.set(key, demangled, cost: State.cost(ofName: demangled))
                function = demangled
            }
        }
        return SymbolizedFrame(
            function: function,
            module: mapping.moduleName,
            address: address,
            moduleOffset: address &- bias,
            buildID: module.buildID
        )
    }

    /// The module and load bias of a mapping, loading (or fetching from the caches) its ELF file on first
    /// use.
    mutating func resolution(
        of index: Int,
        process: inout ProcessState,
        pid: Int32
    ) -> (module: LoadedModule, bias: UInt64)? {
        switch process.resolutions[index] {
        case .unavailable?:
            return nil
        case .module(let serial, let bias)?:
            if let module = self.pinned[serial] ?? self.modules.get(serial) {
                self.pinned[serial] = module
                return (module, bias)
            }
        // Evicted from the cache: find or load it again, below.
        case nil:
            break
        }
        let mapping = process.mappings[index]
        let module: LoadedModule?
        switch mapping.kind {
        case .file:
            module = self.loadFileModule(mapping: mapping, pid: pid)
        case .vdso:
            module = self.loadVDSO(mapping: mapping, pid: pid)
        case .anonymous, .special:
            module = nil
        }
        guard let module else {
            process.resolutions[index] = .unavailable
            return nil
        }
        // ET_EXEC files run at their link-time addresses (as pprof assumes too); everything else is
        // relocated by the bias of the segment the mapping shows.
        let bias =
            module.isPositionDependent
            ? 0
            : ELFFile.loadBias(
                segments: module.loadSegments,
                mappingStart: mapping.start,
                fileOffset: mapping.fileOffset,
                executable: mapping.isExecutable
            )
        self.pinned[module.serial] = module
        process.resolutions[index] = .module(serial: module.serial, bias: bias)
        return (module, bias)
    }

    mutating func loadFileModule(
        mapping: MemoryMapping,
        pid: Int32
    ) -> LoadedModule? {
        let root = "\(self.configuration.procRoot)/\(pid)/root"
        // A deleted file is only reachable through map_files; a live one through the process's root (which is what a
        // container sees, resolved inside it), with map_files as a fallback when the root isn't accessible.
        var file: WorkloadFile?
        if !mapping.isDeleted {
            file = self.openWorkloadFile(mapping.path, root: root, pid: pid, device: mapping.device)
        }
        if file == nil, !StallGuard.shared.isStalled(device: mapping.device) {
            file = try? WorkloadFile.open(
                procfsPath: mapping.mapFilesPath(procRoot: self.configuration.procRoot, pid: pid),
                device: mapping.device
            )
        }
        guard let file else {
            self.logger.debug("cannot open mapped file", metadata: ["pid": "\(pid)", "module.path": "\(mapping.path)"])
            return nil
        }
        if let cached = self.modulesByFile.get(file.key) {
            // nil: the file couldn't be parsed.
            guard let serial = cached else {
                return nil
            }
            if let module = self.pinned[serial] ?? self.modules.get(serial) {
                return module
            }
            // Evicted: load it again.
        }
        let module = self.loadModule(file: file, mappedPath: mapping.path, root: root)
        self.modulesByFile.set(file.key, module?.serial)
        return module
    }

    /// Opens a file a process names, inside its root; a refusal (a FIFO, a device, a link out of the root) is
    /// counted and logged.
    mutating func openWorkloadFile(_ path: String, root: String, pid: Int32, device: UInt64? = nil) -> WorkloadFile? {
        do {
            return try WorkloadFile.open(path, inRoot: root, device: device)
        } catch {
            if error.code == .notRegularFile {
                self.statistics.refusedFiles += 1
                self.logger.debug(
                    "refused a workload file",
                    metadata: ["pid": "\(pid)", "module.path": "\(path)", "error": "\(error)"]
                )
            }
            return nil
        }
    }

    mutating func loadModule(
        file: WorkloadFile,
        mappedPath: String,
        root: String
    ) -> LoadedModule? {
        let elf: ELFFile
        do {
            elf = try ELFFile(file: file)
        } catch {
            self.logger.debug("cannot parse ELF file", metadata: ["module.path": "\(mappedPath)", "error": "\(error)"])
            return nil
        }
        // The same file was loaded already (the same library in another container): reuse its table, unless this
        // copy has better symbols than that one had.
        let identity = elf.sharingIdentity
        if let identity, let serial = self.modulesByIdentity.get(identity),
            let cached = self.pinned[serial] ?? self.modules.get(serial),
            cached.hasFullSymbols || !elf.hasSymbolTable
        {
            return cached
        }
        var builder = SymbolTable.Builder()
        var hasFullSymbols = true
        var symbolSource = "symtab"
        if elf.hasSymbolTable {
            self.collect(from: elf, kinds: .all, into: &builder, path: mappedPath)
        } else {
            if let (debugFile, debugPath) = self.findDebugFile(for: elf, mappedPath: mappedPath, root: root) {
                self.collect(from: debugFile, kinds: .symtab, into: &builder, path: debugPath)
                symbolSource = "debug file \(debugPath)"
            } else if let miniDebugInfo = MiniDebugInfo.image(in: elf) {
                self.collect(from: miniDebugInfo, kinds: .symtab, into: &builder, path: "\(mappedPath) .gnu_debugdata")
                symbolSource = "MiniDebugInfo"
            } else {
                symbolSource = "dynsym"
                hasFullSymbols = false
            }
            self.collect(from: elf, kinds: .dynsym, into: &builder, path: mappedPath)
        }
        let module = LoadedModule(
            buildID: elf.buildID,
            loadSegments: elf.programHeaders.filter(\.isLoad),
            symbols: builder.build(),
            hasFullSymbols: hasFullSymbols,
            isPositionDependent: elf.fileType == .executable,
            serial: self.nextModuleSerial()
        )
        self.logger.debug(
            "loaded symbols",
            metadata: [
                "module.path": "\(mappedPath)",
                "module.build_id": "\(elf.buildID ?? "")",
                "module.symbols": "\(module.symbols.count)",
                "module.symbols_bytes": "\(module.symbols.byteCount)",
                "module.symbol_source": "\(symbolSource)",
            ]
        )
        self.cache(module, identity: identity)
        return module
    }

    func collect(
        from elf: ELFFile,
        kinds: ELFFile.SymbolTableKinds,
        into builder: inout SymbolTable.Builder,
        path: String
    ) {
        do {
            try builder.addFunctionSymbols(of: elf, in: kinds)
        } catch {
            // Symbols read before the damaged entry are kept.
            self.logger.debug("damaged symbol table", metadata: ["module.path": "\(path)", "error": "\(error)"])
        }
    }

    /// Finds a separate debug file the way GDB does: by build id under each debug directory, then by
    /// `.gnu_debuglink` next to the binary, in its `.debug/` subdirectory, and under each debug directory.
    /// All paths are inside the process's root. A candidate whose build id differs is rejected.
    mutating func findDebugFile(for elf: ELFFile, mappedPath: String, root: String) -> (ELFFile, String)? {
        var candidates: [String] = []
        if let buildID = elf.buildID, buildID.count > 2 {
            for directory in self.configuration.debugDirectories {
                candidates.append("\(directory)/.build-id/\(buildID.prefix(2))/\(buildID.dropFirst(2)).debug")
            }
        }
        if let link = elf.debugLink {
            let directory = mappedPath.split(separator: "/", omittingEmptySubsequences: false).dropLast()
                .joined(separator: "/")
            candidates.append("\(directory)/\(link.fileName)")
            candidates.append("\(directory)/.debug/\(link.fileName)")
            for debugDirectory in self.configuration.debugDirectories {
                candidates.append("\(debugDirectory)\(directory)/\(link.fileName)")
            }
        }
        for candidate in candidates where candidate != mappedPath {
            // Inside the process's root: an absolute link never reaches the agent's files, and a FIFO or device
            // named as the debug file is refused, never waited for.
            guard let file = self.openWorkloadFile(candidate, root: root, pid: 0),
                let debugFile = try? ELFFile(file: file), debugFile.hasSymbolTable
            else {
                continue
            }
            if let expected = elf.buildID, let actual = debugFile.buildID, expected != actual {
                continue
            }
            return (debugFile, candidate)
        }
        return nil
    }

    /// The vDSO is an ELF image the kernel maps into every process; read it from `/proc/PID/mem`.
    mutating func loadVDSO(
        mapping: MemoryMapping,
        pid: Int32
    ) -> LoadedModule? {
        let size = mapping.end - mapping.start
        guard size <= 1 << 20, mapping.fileOffset == 0 else {
            return nil
        }
        let path = "\(self.configuration.procRoot)/\(pid)/mem"
        guard let bytes = try? readProcessMemory(path: path, address: mapping.start, count: Int(size)),
            let elf = try? ELFFile(bytes: bytes)
        else {
            self.logger.debug("cannot read vdso", metadata: ["pid": "\(pid)"])
            return nil
        }
        // The vDSO's bytes come from the kernel, but a file may claim its build id: key it apart from files.
        let identity = elf.sharingIdentity.map { "vdso/" + $0 }
        if let identity, let serial = self.modulesByIdentity.get(identity),
            let cached = self.pinned[serial] ?? self.modules.get(serial)
        {
            return cached
        }
        var builder = SymbolTable.Builder()
        self.collect(from: elf, kinds: .all, into: &builder, path: "[vdso]")
        let module = LoadedModule(
            buildID: elf.buildID,
            loadSegments: elf.programHeaders.filter(\.isLoad),
            symbols: builder.build(),
            hasFullSymbols: true,
            isPositionDependent: elf.fileType == .executable,
            serial: self.nextModuleSerial()
        )
        self.cache(module, identity: identity)
        return module
    }
}
