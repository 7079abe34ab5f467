// Symbolizer+PerfMaps.swift: JIT code named from the process's `/tmp/perf-PID.map` (V8, .NET, the JVM through
// perf-map-agent), read inside the process's own root only, streamed within byte limits, re-read as the runtime
// appends to it.

import HearthELF
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension State {
    /// Reads the process's perf map, `/tmp/perf-NSPID.map` inside its root (``perfMapPath(pid:status:)``): lines of
    /// `START SIZE NAME`, hex start and size. Leaves no table when there is none.
    mutating func refreshPerfMap(
        of process: inout ProcessState,
        pid: Int32,
        now: ContinuousClock.Instant,
        reload: Bool
    ) {
        // The path is worked out once per process; whether it exists is looked at on every refresh, as a runtime
        // may create its map after the first lookup.
        let root = "\(self.configuration.procRoot)/\(pid)/root"
        let path =
            process.perfMap?.path
            ?? Self.perfMapPath(
                pid: pid,
                status: try? readWholeFile("\(self.configuration.procRoot)/\(pid)/status", limit: 1 << 20)
            )
        let file = self.openWorkloadFile(path, root: root, pid: pid)
        if !reload, let known = process.perfMap, known.fileKey == file?.key {
            process.perfMap?.checkedAt = now
            return
        }
        var tableSerial: UInt64?
        var truncated = false
        if let file {
            let module = LoadedModule(
                buildID: nil,
                loadSegments: [],
                symbols: self.loadPerfMap(file, path: path, pid: pid, truncated: &truncated),
                hasFullSymbols: false,
                isPositionDependent: false,
                serial: self.nextModuleSerial()
            )
            self.modules.set(module.serial, module, cost: module.byteCount)
            self.pinned[module.serial] = module
            tableSerial = module.serial
        }
        process.perfMap = PerfMapState(
            path: path,
            fileKey: file?.key,
            tableSerial: tableSerial,
            checkedAt: now,
            truncated: truncated
        )
    }

    /// Where the perf map of process `pid` is inside its root: `/tmp/perf-NSPID.map`, NSPID being its pid in its own
    /// pid namespace (the last field of `NSpid:` in its status), as a runtime names the map with the pid it sees in
    /// the /tmp it sees. Never the host's /tmp for a containerised process: a file there is not the process's to
    /// describe (any host user could write it). Without an `NSpid:` line (kernels before 4.1, or an unreadable
    /// status) NSPID is `pid`.
    static func perfMapPath(pid: Int32, status: [UInt8]?) -> String {
        "/tmp/perf-\(status.flatMap(Self.namespacePID(status:)) ?? pid).map"
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

    /// Streams the map within ``Symbolizer/Configuration/perfMapLimits``; a map cut short is counted.
    mutating func loadPerfMap(_ file: WorkloadFile, path: String, pid: Int32, truncated: inout Bool) -> SymbolTable {
        let (table, cut, malformed) = PerfMapReader.read(file, limits: self.configuration.perfMapLimits)
        truncated = cut
        if cut { self.statistics.truncatedInputs += 1 }
        self.logger.debug(
            "loaded perf map",
            metadata: [
                "pid": "\(pid)", "perf_map.symbols": "\(table.count)", "perf_map.truncated": "\(truncated)",
                "perf_map.malformed_lines": "\(malformed)",
            ]
        )
        return table
    }
}
