// UnwindTableLoader.swift: fills the unwinder's maps for a process: compiles the `.eh_frame` of each executable file
// it maps (once per build id, shared by every process), appends the rows to unwind_rows within the budget, and
// writes the process's sorted mapping table; frees a module's rows when its last process is forgotten, and evicts the
// modules sampled least recently when a new one needs their room.

internal import CLibbpf
import HearthELF
import HearthUnwind
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The user-space half of native unwinding: which modules are loaded where, and which processes use them.
struct UnwindTableLoader {
    struct Maps {
        let rows: Int32
        let modules: Int32
        let processes: Int32
    }

    /// A file as /proc/PID/maps names it: device and inode.
    struct FileIdentity: Hashable {
        var major: UInt32
        var minor: UInt32
        var inode: UInt64
    }

    /// What the loader learned about a file: its table key (nil: no usable CFI) and its load segments.
    struct FileInfo {
        var key: UnwindTable.Key?
        var segments: [ELFFile.ProgramHeader]
    }

    /// A module whose rows are in the map.
    struct Module {
        var id: UInt32
        var rows: Range<UInt32>
        var processes: Set<Int32>
    }

    let maps: Maps
    let logger: Logger
    private(set) var allocator: RowAllocator
    /// What each file mapped recently was found to be; bounded, so processes that map ever new files cannot grow it.
    private var files = LRUCache<FileIdentity, FileInfo>(capacity: 4096)
    private var modules: [UnwindTable.Key: Module] = [:]
    /// Keys whose tables did not fit the budget; retried only after rows are freed.
    private var overBudget: Set<UnwindTable.Key> = []
    /// pid → the keys of the modules its table refers to.
    private(set) var processes: [Int32: Set<UnwindTable.Key>] = [:]
    /// Processes a load was attempted for (loaded or not), and when: requests are served at most once per
    /// ``UnwindTableService/retryInterval`` each.
    private(set) var attempted: [Int32: ContinuousClock.Instant] = [:]
    /// When each process was last seen in a drain: what eviction goes by (the time of its last load before that;
    /// not a mere check of its mappings, which does not mean it was sampled).
    private var lastSampled: [Int32: ContinuousClock.Instant] = [:]
    private var loadedAt: [Int32: ContinuousClock.Instant] = [:]
    /// When each process's mappings were last compared with /proc, and when a load of one last failed: the
    /// service serves such requests at most once per ``UnwindTableService/retryInterval``. A first load that
    /// worked sets neither, so the reload an `exec` right after it needs is served at once.
    private(set) var lastReloadCheck: [Int32: ContinuousClock.Instant] = [:]
    var lastFailedLoad: [Int32: ContinuousClock.Instant] = [:]
    /// Processes whose table refers to an evicted module: reloaded when they ask again.
    private var stale: Set<Int32> = []
    /// Modules evicted so far.
    private(set) var evictions = 0
    /// What each loaded process's executable mappings were, and when they were last compared with /proc.
    private var mapsSeen: [Int32: (signature: [UInt64], checked: ContinuousClock.Instant)] = [:]
    private var nextModuleID: UInt32 = 1
    private let maxProcesses: UInt32
    private let evictionGrace: Duration
    let loadsTablesOnFirstSample: Bool
    /// What one file's tables may cost to compile (rows kept within the row budget too).
    let limits: UnwindTable.Limits

    init(maps: Maps, budget: NativeUnwinding, logger: Logger) {
        self.maps = maps
        self.logger = logger
        self.allocator = RowAllocator(capacity: budget.rowBudget)
        self.maxProcesses = budget.maxProcesses
        self.evictionGrace = budget.evictionGrace
        self.loadsTablesOnFirstSample = budget.loadsTablesOnFirstSample
        var limits = UnwindTable.Limits()
        limits.maximumRows = min(limits.maximumRows, Int(budget.rowBudget))
        limits.maximumSectionBytes = budget.maximumSectionBytes
        self.limits = limits
    }

    /// A process not sampled this long gives up its slot when the process table is full.
    static let processIdleLimit: Duration = .seconds(60)

    /// Whether `pid` has a mapping table in the map.
    func hasTables(pid: Int32) -> Bool { self.processes[pid] != nil }

    /// Records that these processes were sampled now.
    mutating func noteSampled(_ pids: some Sequence<Int32>, at now: ContinuousClock.Instant = .now) {
        for pid in pids where self.processes[pid] != nil || self.attempted[pid] != nil { self.lastSampled[pid] = now }
    }

    /// Loads (or reloads) the tables of `pid` and its mapping table.
    mutating func load(pid: Int32, procRoot: String = "/proc") throws(UnwindTablesError) -> UnwindTablesReport {
        self.attempted[pid] = .now
        if self.processes[pid] == nil, self.processes.count >= Int(self.maxProcesses) {
            self.forgetIdleProcess()
        }
        if self.processes[pid] == nil, self.processes.count >= Int(self.maxProcesses) {
            throw UnwindTablesError(
                code: .tooManyProcesses,
                message: "\(self.maxProcesses) processes have unwind tables already"
            )
        }
        let mappings: [MemoryMapping]
        do {
            mappings = try Self.executableMappings(pid: pid, procRoot: procRoot)
        } catch {
            throw UnwindTablesError(
                code: .processUnreadable,
                message: "read the mappings of process \(pid)",
                cause: error
            )
        }
        var report = UnwindTablesReport()
        var entries: [hearth_unwind_mapping] = []
        var keys: Set<UnwindTable.Key> = []
        // Modules this process maps that are known already: never evicted to make room for its other modules.
        var known: Set<UnwindTable.Key> = []
        for mapping in mappings where mapping.isExecutable {
            let identity = FileIdentity(major: mapping.deviceMajor, minor: mapping.deviceMinor, inode: mapping.inode)
            if let key = self.files.get(identity)?.key { known.insert(key) }
        }
        for mapping in mappings where mapping.isExecutable {
            guard entries.count < Int(HEARTH_UNWIND_MAX_MAPPINGS) else {
                report.mappingsLeftOut += 1
                continue
            }
            var entry = hearth_unwind_mapping()
            entry.start = mapping.start
            entry.end = mapping.end
            if mapping.kind == .file,
                let (module, bias) = self.module(
                    for: mapping,
                    pid: pid,
                    procRoot: procRoot,
                    inUse: keys.union(known),
                    report: &report
                )
            {
                entry.module_id = module.id
                entry.bias = bias
                keys.insert(module.key)
            } else {
                report.mappingsWithoutTable += 1
            }
            entries.append(entry)
        }
        report.mappings = entries.count
        try self.writeProcess(pid: pid, entries: entries)
        self.mapsSeen[pid] = (Self.signature(of: mappings), .now)
        let previous = self.processes[pid] ?? []
        self.processes[pid] = keys
        self.loadedAt[pid] = .now
        self.stale.remove(pid)
        for key in keys { self.modules[key]?.processes.insert(pid) }
        for key in previous.subtracting(keys) { self.release(key, from: pid) }
        return report
    }

    /// Reloads a process whose executable mappings changed (`dlopen`, a new `exec`) since they were read, or one of
    /// whose modules was evicted, checking /proc at most once per `interval`. Returns what the reload did, or nil
    /// when nothing changed.
    mutating func reloadIfMappingsChanged(
        pid: Int32,
        interval: Duration,
        procRoot: String = "/proc"
    ) throws(UnwindTablesError) -> UnwindTablesReport? {
        if self.stale.contains(pid) {  // a module it uses was evicted: bring it back
            return try self.load(pid: pid, procRoot: procRoot)
        }
        guard let seen = self.mapsSeen[pid], seen.checked.duration(to: .now) >= interval else { return nil }
        self.attempted[pid] = .now
        self.lastReloadCheck[pid] = .now
        guard let mappings = try? Self.executableMappings(pid: pid, procRoot: procRoot) else { return nil }
        let signature = Self.signature(of: mappings)
        self.mapsSeen[pid]?.checked = .now
        guard signature != seen.signature else { return nil }
        return try self.load(pid: pid, procRoot: procRoot)
    }

    /// The executable mappings of a process, within the bounds the mapping table has room for (the rest is never
    /// written to the map), so a process with 60,000 mappings costs what one with 4,096 does.
    static func executableMappings(pid: Int32, procRoot: String) throws(ELFError) -> [MemoryMapping] {
        try ProcMaps.read(
            path: "\(procRoot)/\(pid)/maps",
            maximumMappings: 4 * Int(HEARTH_UNWIND_MAX_MAPPINGS),
            keep: { $0.isExecutable }
        ).mappings
    }

    /// The executable mappings as start, end and inode, to notice when they change.
    private static func signature(of mappings: [MemoryMapping]) -> [UInt64] {
        mappings.filter(\.isExecutable).flatMap { [$0.start, $0.end, $0.inode] }
    }

    /// Removes a process's mapping table and frees the rows no other process uses.
    mutating func forget(pid: Int32) {
        self.attempted[pid] = nil
        self.lastSampled[pid] = nil
        self.loadedAt[pid] = nil
        self.lastReloadCheck[pid] = nil
        self.lastFailedLoad[pid] = nil
        self.stale.remove(pid)
        self.mapsSeen[pid] = nil
        guard let keys = self.processes.removeValue(forKey: pid) else { return }
        var key = UInt32(bitPattern: pid)
        _ = bpf_map_delete_elem(self.maps.processes, &key)
        for moduleKey in keys { self.release(moduleKey, from: pid) }
    }

    /// Forgets every process that has exited.
    mutating func forgetExitedProcesses() {
        for pid in Array(self.attempted.keys) where kill(pid, 0) != 0 && errno == ESRCH {
            self.forget(pid: pid)
        }
    }

    /// Frees the slot of the process sampled least recently, if it has not been sampled for a minute.
    private mutating func forgetIdleProcess() {
        let now = ContinuousClock.now
        let idle = self.processes.keys.min {
            (self.lastSampled[$0] ?? self.loadedAt[$0] ?? now) < (self.lastSampled[$1] ?? self.loadedAt[$1] ?? now)
        }
        guard let idle,
            (self.lastSampled[idle] ?? self.loadedAt[idle] ?? now).duration(to: now) >= Self.processIdleLimit
        else { return }
        self.forget(pid: idle)
    }

    /// When a module was last sampled: the latest of its processes.
    private func lastSampled(_ module: Module) -> ContinuousClock.Instant? {
        module.processes.compactMap { self.lastSampled[$0] ?? self.loadedAt[$0] }.max()
    }

    /// Evicts modules, least recently sampled first, until `rows` rows can be allocated; none sampled within
    /// ``NativeUnwinding/evictionGrace`` and none of `inUse` (the modules of the process being loaded). Returns the range, or nil.
    private mutating func allocateEvicting(
        _ rows: UInt32,
        inUse: Set<UnwindTable.Key>,
        report: inout UnwindTablesReport
    ) -> Range<UInt32>? {
        if let range = self.allocator.allocate(rows) { return range }
        let now = ContinuousClock.now
        let candidates = self.modules
            .filter { key, module in
                guard !inUse.contains(key) else { return false }
                guard let sampled = self.lastSampled(module) else { return true }
                return sampled.duration(to: now) >= self.evictionGrace
            }
            .map { (key: $0.key, sampled: self.lastSampled($0.value)) }
            .sorted { ($0.sampled ?? now - .seconds(1 << 30)) < ($1.sampled ?? now - .seconds(1 << 30)) }
        for candidate in candidates {
            self.evict(candidate.key)
            report.modulesEvicted += 1
            if let range = self.allocator.allocate(rows) { return range }
        }
        return nil
    }

    /// Unlinks a module still in use; its processes walk its code with frame pointers until they ask again.
    private mutating func evict(_ key: UnwindTable.Key) {
        guard let module = self.modules.removeValue(forKey: key) else { return }
        var id = module.id
        _ = bpf_map_delete_elem(self.maps.modules, &id)
        self.allocator.release(module.rows)
        for pid in module.processes {
            self.processes[pid]?.remove(key)
            self.stale.insert(pid)
        }
        self.evictions += 1
        self.logger.debug("unwind table evicted", metadata: ["unwind.key": "\(key)", "rows": "\(module.rows.count)"])
    }

    private mutating func release(_ key: UnwindTable.Key, from pid: Int32) {
        guard var module = self.modules[key] else { return }
        module.processes.remove(pid)
        guard module.processes.isEmpty else {
            self.modules[key] = module
            return
        }
        // Unlink the module before its rows can be reused: a walk racing this sees no table, not another's rows.
        var id = module.id
        _ = bpf_map_delete_elem(self.maps.modules, &id)
        self.allocator.release(module.rows)
        self.modules[key] = nil
        self.overBudget.removeAll()
    }

    /// The module of a file mapping and the mapping's load bias; nil when the file has no usable table.
    private mutating func module(
        for mapping: MemoryMapping,
        pid: Int32,
        procRoot: String,
        inUse: Set<UnwindTable.Key>,
        report: inout UnwindTablesReport
    ) -> (module: (id: UInt32, key: UnwindTable.Key), bias: UInt64)? {
        let identity = FileIdentity(major: mapping.deviceMajor, minor: mapping.deviceMinor, inode: mapping.inode)
        var elf: ELFFile?
        if self.files.get(identity) == nil {
            elf = Self.openELF(mapping, pid: pid, procRoot: procRoot)
            guard let elf else {
                self.files.set(identity, FileInfo(key: nil, segments: []))
                return nil
            }
            // Shared by build id only between files that really are the same (size and layout too).
            let key =
                elf.sharingIdentity.map { UnwindTable.Key.sharedFile(buildID: elf.buildID ?? "", identity: $0) }
                ?? .file(device: UInt64(mapping.deviceMajor) << 32 | UInt64(mapping.deviceMinor), inode: mapping.inode)
            self.files.set(identity, FileInfo(key: key, segments: elf.programHeaders))
        }
        guard let file = self.files.get(identity), let key = file.key else { return nil }
        let bias = ELFFile.loadBias(
            segments: file.segments,
            mappingStart: mapping.start,
            fileOffset: mapping.fileOffset,
            executable: true
        )
        if let module = self.modules[key] {
            if !(self.processes[pid]?.contains(key) ?? false) { report.modulesShared += 1 }
            return ((module.id, key), bias)
        }
        if self.overBudget.contains(key) {
            report.modulesOverBudget += 1
            return nil
        }
        if elf == nil { elf = Self.openELF(mapping, pid: pid, procRoot: procRoot) }
        guard let elf else { return nil }
        let table: UnwindTable
        do {
            table = try UnwindTable(elf: elf, key: key, limits: self.limits, logger: self.logger)
        } catch {
            if error.code == .tooLarge || (error.cause as? ELFError)?.code == .tooLarge { report.filesOverLimits += 1 }
            self.files.set(identity, FileInfo(key: nil, segments: file.segments))
            return nil
        }
        if table.statistics.fdesOverRowLimit > 0 || table.statistics.duplicateFDEEntries > 0 {
            report.filesOverLimits += 1
        }
        guard !table.rows.isEmpty else {
            self.files.set(identity, FileInfo(key: nil, segments: file.segments))
            return nil
        }
        guard let module = self.add(table, inUse: inUse, report: &report) else {
            self.overBudget.insert(key)
            report.modulesOverBudget += 1
            return nil
        }
        report.modulesLoaded += 1
        report.rowsWritten += module.rows.count
        return ((module.id, key), bias)
    }

    /// Opens a mapped file: through map_files (the very file mapped, deleted or in another mount namespace), else by
    /// its path inside the process's root; never a FIFO or device, never a link out of the root.
    static func openELF(_ mapping: MemoryMapping, pid: Int32, procRoot: String) -> ELFFile? {
        // Both opens are guarded by the mapping's device: once one stalls, the other is refused at once.
        let path = mapping.mapFilesPath(procRoot: procRoot, pid: pid)
        if let file = try? WorkloadFile.open(procfsPath: path, device: mapping.device),
            let elf = try? ELFFile(file: file)
        {
            return elf
        }
        guard let file = try? WorkloadFile.open(mapping.path, inRoot: "\(procRoot)/\(pid)/root", device: mapping.device)
        else { return nil }
        return try? ELFFile(file: file)
    }

    /// Copies a table's rows into free space and publishes the module; nil when it doesn't fit or a write fails.
    private mutating func add(
        _ table: UnwindTable,
        inUse: Set<UnwindTable.Key>,
        report: inout UnwindTablesReport
    ) -> Module? {
        let rows = table.encodedRows()
        guard rows.count < Int(HEARTH_UNWIND_MAX_MODULE_ROWS), rows.count <= Int(self.allocator.capacity),
            let range = self.allocateEvicting(UInt32(rows.count), inUse: inUse, report: &report)
        else {
            return nil
        }
        do {
            try Self.writeRows(rows, at: range.lowerBound, fd: self.maps.rows)
            var id = self.nextModuleID
            var value = hearth_unwind_module()
            value.first_row = range.lowerBound
            value.row_count = UInt32(rows.count)
            value.base = table.baseAddress
            let status = bpf_map_update_elem(self.maps.modules, &id, &value, UInt64(BPF_ANY))
            if status != 0 {
                throw UnwindTablesError(
                    code: .mapOperation,
                    message: "add module \(table.key)",
                    cause: BPFError(code: .mapOperation, message: "unwind_modules update", errno: -status)
                )
            }
        } catch {
            self.logger.warning(
                "could not load unwind table",
                metadata: ["unwind.key": "\(table.key)", "error": "\(error)"]
            )
            self.allocator.release(range)
            return nil
        }
        let module = Module(id: self.nextModuleID, rows: range, processes: [])
        self.nextModuleID += 1
        self.modules[table.key] = module
        return module
    }

    /// Writes rows into unwind_rows from index `first`, in batches of 16k.
    private static func writeRows(_ rows: [UInt64], at first: UInt32, fd: Int32) throws(UnwindTablesError) {
        let chunk = 16_384
        var offset = 0
        while offset < rows.count {
            let end = min(offset + chunk, rows.count)
            var keys = (offset..<end).map { first + UInt32($0) }
            var values = Array(rows[offset..<end])
            var count = UInt32(end - offset)
            let status = bpf_map_update_batch(fd, &keys, &values, &count, nil)
            if status != 0 {
                throw UnwindTablesError(
                    code: .mapOperation,
                    message: "write \(end - offset) unwind rows at \(first + UInt32(offset))",
                    cause: BPFError(code: .mapOperation, message: "unwind_rows batch update", errno: errno)
                )
            }
            offset = end
        }
    }

    private func writeProcess(pid: Int32, entries: [hearth_unwind_mapping]) throws(UnwindTablesError) {
        var value = hearth_unwind_process()
        value.count = UInt32(entries.count)
        withUnsafeMutableBytes(of: &value.mappings) { raw in
            let slots = raw.bindMemory(to: hearth_unwind_mapping.self)
            for (index, entry) in entries.enumerated() { slots[index] = entry }
        }
        var key = UInt32(bitPattern: pid)
        let status = bpf_map_update_elem(self.maps.processes, &key, &value, UInt64(BPF_ANY))
        if status != 0 {
            throw UnwindTablesError(
                code: status == -E2BIG ? .tooManyProcesses : .mapOperation,
                message: "write the mapping table of process \(pid)",
                cause: BPFError(code: .mapOperation, message: "unwind_processes update", errno: -status)
            )
        }
    }
}
