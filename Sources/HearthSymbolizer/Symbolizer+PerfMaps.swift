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
    /// Reads the process's perf map (`/tmp/perf-PID.map` inside its root, named with its PID in its own
    /// namespace): lines of `START SIZE NAME`, hex start and size. Returns an empty table when there is none.
    mutating func refreshPerfMap(
        of process: inout ProcessState,
        pid: Int32,
        now: ContinuousClock.Instant,
        reload: Bool
    ) {
        let path: String
        if let known = process.perfMap?.path {
            path = known
        } else {
            let processDirectory = "\(self.configuration.procRoot)/\(pid)"
            var namespacePID = pid
            if let status = try? readWholeFile("\(processDirectory)/status", limit: 1 << 20) {
                for line in status.split(separator: 0x0a) where line.starts(with: Array("NSpid:".utf8)) {
                    let last = line.dropFirst(6).split(whereSeparator: { $0 == 0x09 || $0 == 0x20 }).last
                    if let last, let value = Int32(String(decoding: last, as: UTF8.self)) {
                        namespacePID = value
                    }
                }
            }
            path = "\(processDirectory)/root/tmp/perf-\(namespacePID).map"
        }
        let fileKey = FileKey(path: path)
        if !reload, let known = process.perfMap, known.fileKey == fileKey {
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
        process.perfMap = PerfMapState(path: path, fileKey: fileKey, tableSerial: tableSerial, checkedAt: now)
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
