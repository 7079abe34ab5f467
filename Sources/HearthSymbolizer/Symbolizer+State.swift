// Symbolizer+State.swift: what the symbolizer keeps under its lock: loaded modules, processes' mappings, perf maps,
// and the byte-budgeted caches that hold them.

import HearthELF
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The ELF data a mapping needs: its build id, `PT_LOAD` segments (for the load bias) and functions.
final class LoadedModule: Sendable {
    let buildID: String?
    let loadSegments: [ELFFile.ProgramHeader]
    let symbols: SymbolTable
    /// Whether the table came from a `.symtab` (the file's own or a debug file's), not `.dynsym` alone.
    let hasFullSymbols: Bool

    /// Whether the file is `ET_EXEC` (a non-PIE executable), whose load bias is always 0.
    let isPositionDependent: Bool
    /// Unique per symbolizer, never reused: keys the module and demangled-name caches.
    let serial: UInt64

    /// The module's share of the symbolizer's byte budget.
    var byteCount: Int {
        self.symbols.byteCount + self.loadSegments.count * MemoryLayout<ELFFile.ProgramHeader>.stride + 256
            + (self.buildID?.utf8.count ?? 0)
    }

    init(
        buildID: String?,
        loadSegments: [ELFFile.ProgramHeader],
        symbols: SymbolTable,
        hasFullSymbols: Bool,
        isPositionDependent: Bool,
        serial: UInt64
    ) {
        self.buildID = buildID
        self.loadSegments = loadSegments
        self.symbols = symbols
        self.hasFullSymbols = hasFullSymbols
        self.isPositionDependent = isPositionDependent
        self.serial = serial
    }
}

/// A symbol of a loaded module: its serial and its index in the module's table.
struct NameKey: Hashable {
    var module: UInt64
    var symbol: Int
}

/// What a mapping resolved to: a module, by its serial (looked up in the cache on each use, so a process
/// never keeps an evicted table alive), or nothing.
enum MappingResolution {
    case module(serial: UInt64, bias: UInt64)
    case unavailable
}

/// A process's perf map: where it is inside the process's root, which version of it was parsed, and when it was last
/// checked for changes.
struct PerfMapState {
    /// The path inside the process's root (``State/perfMapPath(pid:status:)``).
    var path: String
    /// nil when the file didn't exist.
    var fileKey: FileKey?
    /// The serial of the parsed table in the module cache; nil when the file didn't exist.
    var tableSerial: UInt64?
    var checkedAt: ContinuousClock.Instant
    /// Whether the map was cut at its limits: it is looked at again less often.
    var truncated = false
}

struct ProcessState {
    var mappings: [MemoryMapping]
    /// Parallel to `mappings`; filled on first use of each mapping.
    var resolutions: [MappingResolution?]
    var lastRead: ContinuousClock.Instant
    /// The process's perf map for JIT code, read on the first lookup in anonymous memory.
    var perfMap: PerfMapState?

    /// The process's share of ``Symbolizer/Configuration/maxProcessBytes``: its mappings, their paths and resolutions.
    let byteCount: Int

    init(mappings: [MemoryMapping], lastRead: ContinuousClock.Instant) {
        self.byteCount = mappings.reduce(128) { total, mapping in
            total + MemoryLayout<MemoryMapping>.stride + MemoryLayout<MappingResolution?>.stride
                + mapping.path.utf8.count
        }
        self.mappings = mappings
        self.resolutions = Array(repeating: nil, count: mappings.count)
        self.lastRead = lastRead
    }
}

struct State {
    var processes: LRUCache<Int32, ProcessState>
    /// Every loaded table (files, vDSOs, perf maps) by serial, within the tables' share of the byte budget.
    /// The other caches and processes refer to tables by serial only.
    var modules: LRUCache<UInt64, LoadedModule>
    /// Serials by file; nil remembers that the file couldn't be parsed.
    var modulesByFile: LRUCache<FileKey, UInt64?>
    /// Serials by ``ELFFile/sharingIdentity`` (build id, size and layout): one library mapped by many processes or
    /// containers is parsed once, and a file that only claims another's build id never shares its table.
    var modulesByIdentity: LRUCache<String, UInt64>
    var kernel: KernelSymbols?
    var statistics = Symbolizer.Statistics()
    var demangledNames: LRUCache<NameKey, String>
    private var moduleSerial: UInt64 = 0
    let configuration: Symbolizer.Configuration
    let logger: Logger
    /// The tables the current call uses, kept alive for it even if the cache can't hold them; emptied when the
    /// call ends (``unpinAll()``).
    var pinned: [UInt64: LoadedModule] = [:]

    /// Bytes held by the cached tables and demangled names; never above `maxSymbolBytes`.
    var cachedSymbolBytes: Int { self.modules.totalCost + self.demangledNames.totalCost }

    /// A cached name's share of the budget: its bytes plus the cache node and string overhead.
    static func cost(ofName name: String) -> Int { name.utf8.count + 64 }

    /// Caches a new module by serial and build id, and keeps it for the current call.
    mutating func cache(_ module: LoadedModule, identity: String?) {
        self.modules.set(module.serial, module, cost: module.byteCount)
        self.pinned[module.serial] = module
        if let identity {
            self.modulesByIdentity.set(identity, module.serial)
        }
    }

    mutating func unpinAll() { self.pinned.removeAll(keepingCapacity: true) }

    mutating func nextModuleSerial() -> UInt64 {
        self.moduleSerial += 1
        return self.moduleSerial
    }

    init(configuration: Symbolizer.Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.processes = LRUCache(
            capacity: configuration.maxCachedProcesses,
            maximumCost: configuration.maxProcessBytes
        )
        let budget = max(0, configuration.maxSymbolBytes)
        let namesBudget = budget / 4
        self.modules = LRUCache(capacity: configuration.maxCachedFiles, maximumCost: budget - namesBudget)
        self.modulesByFile = LRUCache(capacity: configuration.maxCachedFiles)
        self.modulesByIdentity = LRUCache(capacity: configuration.maxCachedFiles)
        self.demangledNames = LRUCache(capacity: 1 << 16, maximumCost: namesBudget)
    }
}
