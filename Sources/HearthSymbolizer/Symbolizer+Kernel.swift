// Symbolizer+Kernel.swift: kernel stacks named from `/proc/kallsyms`.

import HearthELF
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension Symbolizer {
    /// Symbolizes a kernel stack, leaf first, from `/proc/kallsyms` (read on first use; see
    /// ``refreshKernelSymbols()``). As for user stacks, entries after the first are return addresses and
    /// `address - 1` is looked up for them.
    ///
    /// When kallsyms can't be read or `kptr_restrict` hides its addresses, every frame is returned
    /// unresolved with module `[kernel.kallsyms]`.
    public func symbolizeKernel(addresses: [UInt64]) -> [SymbolizedFrame] {
        self.state.withLock { state in
            if state.kernel == nil {
                state.kernel = self.loadKernelSymbols()
            }
            let kernel = state.kernel ?? KernelSymbols()
            var frames: [SymbolizedFrame] = []
            frames.reserveCapacity(addresses.count)
            for (position, address) in addresses.enumerated() {
                let lookupAddress = position == 0 || address == 0 ? address : address - 1
                if let symbol = kernel.lookup(lookupAddress) {
                    frames.append(
                        SymbolizedFrame(
                            function: Demangler.demangle(symbol.name),
                            module: symbol.module,
                            address: address,
                            moduleOffset: address,
                            isKernel: true
                        )
                    )
                    state.statistics.kernelFramesResolved += 1
                } else {
                    frames.append(
                        SymbolizedFrame(
                            function: nil,
                            module: KernelSymbols.kernelModuleName,
                            address: address,
                            moduleOffset: address,
                            isKernel: true
                        )
                    )
                    state.statistics.kernelFramesUnresolved += 1
                }
            }
            return frames
        }
    }

    /// Re-reads `/proc/kallsyms`, for example after kernel modules were loaded.
    /// - Returns: The number of kernel text symbols now known (0 when addresses are hidden).
    @discardableResult
    public func refreshKernelSymbols() -> Int {
        let symbols = self.loadKernelSymbols()
        self.state.withLock { $0.kernel = symbols }
        return symbols.count
    }

    func loadKernelSymbols() -> KernelSymbols {
        let path = "\(self.configuration.procRoot)/kallsyms"
        let symbols: KernelSymbols
        do {
            symbols = KernelSymbols(parsing: try readWholeFile(path))
        } catch {
            self.logger.info("cannot read kernel symbols", metadata: ["path": "\(path)", "error": "\(error)"])
            return KernelSymbols()
        }
        if symbols.count == 0 {
            self.logger.info(
                "kernel symbol addresses are hidden; kernel frames stay unresolved",
                metadata: [
                    "path": "\(path)",
                    "hint": "needs kernel.kptr_restrict=0, or kptr_restrict=1 with CAP_SYSLOG",
                ]
            )
        }
        return symbols
    }
}
