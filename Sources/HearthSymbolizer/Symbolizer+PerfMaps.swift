// Symbolizer+PerfMaps.swift: JIT code named from the process's `/tmp/perf-PID.map` (V8, .NET, the JVM through
// perf-map-agent), re-read as the runtime appends to it.

import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension State {
    /// Reads the process's perf map, the first of ``perfMapCandidates(procRoot:pid:status:)`` that exists: lines
    /// of `START SIZE NAME`, hex start and size. Returns an empty table when there is none.
    mutating func refreshPerfMap(
        of process: inout ProcessState,
        pid: Int32,
        now: ContinuousClock.Instant,
        reload: Bool
    ) {
        // The candidates are worked out once per process; which of them exists is looked at on every refresh, as
        // a runtime may create its map after the first lookup.
        let candidates =
            process.perfMap?.candidates
            ?? Self.perfMapCandidates(
                procRoot: self.configuration.procRoot,
                pid: pid,
                status: try? readWholeFile("\(self.configuration.procRoot)/\(pid)/status", limit: 1 << 20)
            )
        let found = candidates.lazy.compactMap { path in FileKey(path: path).map { (path, $0) } }.first
        let path = found?.0 ?? candidates[0]
        let fileKey = found?.1
        if !reload, let known = process.perfMap, known.path == path, known.fileKey == fileKey {
            process.perfMap?.checkedAt = now
            return
        }
        var tableSerial: UInt64?
        if fileKey != nil {
            let module = LoadedModule(
                buildID: nil,
                loadSegments: [],
                symbols: self.loadPerfMap(path: path, pid: pid),
                hasFullSymbols: false,
                isPositionDependent: false,
                serial: self.nextModuleSerial()
            )
            self.modules.set(module.serial, module, cost: module.byteCount)
            self.pinned[module.serial] = module
            tableSerial = module.serial
        }
        process.perfMap = PerfMapState(
            candidates: candidates,
            path: path,
            fileKey: fileKey,
            tableSerial: tableSerial,
            checkedAt: now
        )
    }

    /// Where the perf map of process `pid` (as `procRoot` numbers it) may be, most likely first:
    /// 1. `/tmp/perf-NSPID.map` inside the process's root, NSPID being its pid in its own pid namespace (the last
    ///    field of `NSpid:` in its status): a runtime names the map with the pid it sees, in the /tmp it sees,
    ///    which in a container is neither the host's pid nor the host's /tmp.
    /// 2. `/tmp/perf-PID.map` in the root of the pid namespace's init (`procRoot/1/root`, the host's / when the
    ///    agent sees the host's pids): where perf looks when the process's own namespace has none, and where
    ///    tools that copy a container's map out (perf-map-agent) put it.
    /// Without an `NSpid:` line (kernels before 4.1, or an unreadable status) NSPID is `pid`.
    static func perfMapCandidates(procRoot: String, pid: Int32, status: [UInt8]?) -> [String] {
        let namespacePID = status.flatMap(Self.namespacePID(status:)) ?? pid
        let candidates = [
            "\(procRoot)/\(pid)/root/tmp/perf-\(namespacePID).map",
            "\(procRoot)/1/root/tmp/perf-\(pid).map",
        ]
        return candidates[0] == candidates[1] ? [candidates[0]] : candidates
    }

    /// The last field of the `NSpid:` line of a /proc/PID/status: the pid in the process's own pid namespace.
    static func namespacePID(status: [UInt8]) -> Int32? {
        for line in status.split(separator: 0x0a) where line.starts(with: Array("NSpid:".utf8)) {
            let fields = line.dropFirst(6).split(whereSeparator: { $0 == 0x09 || $0 == 0x20 })
            return fields.last.flatMap { Int32(String(decoding: $0, as: UTF8.self)) }
        }
        return nil
    }

    /// The process's parsed perf map, if it has one and its table is still cached.
    mutating func perfMapTable(of process: ProcessState) -> SymbolTable? {
        guard let serial = process.perfMap?.tableSerial,
            let module = self.pinned[serial] ?? self.modules.get(serial)
        else {
            return nil
        }
        self.pinned[serial] = module
        return module.symbols
    }

    func loadPerfMap(path: String, pid: Int32) -> SymbolTable {
        guard let text = try? readWholeFile(path, limit: 64 << 20) else {
            return .empty
        }
        var builder = SymbolTable.Builder()
        builder.stripsSymbolVersions = false
        for line in text.split(separator: 0x0a) {
            let fields = line.split(separator: 0x20, maxSplits: 2, omittingEmptySubsequences: true)
            guard fields.count == 3,
                let start = Self.perfMapHex(fields[0]),
                let size = Self.perfMapHex(fields[1]),
                start != 0
            else {
                continue
            }
            builder.add(
                RawFunctionSymbol(
                    value: start,
                    size: size,
                    type: 2,
                    binding: 1,
                    sectionIndex: 0,
                    isDynamic: false,
                    name: ArraySlice(fields[2]),
                    sectionEnd: nil
                )
            )
        }
        self.logger.debug("loaded perf map", metadata: ["pid": "\(pid)", "perf_map.symbols": "\(builder.count)"])
        return builder.build()
    }

    static func perfMapHex(_ field: ArraySlice<UInt8>) -> UInt64? {
        var digits = String(decoding: field, as: UTF8.self)
        if digits.hasPrefix("0x") || digits.hasPrefix("0X") {
            digits.removeFirst(2)
        }
        return UInt64(digits, radix: 16)
    }
}
