// MiniDebugInfo.swift: the xz-compressed `.gnu_debugdata` symbol table of stripped Fedora and RHEL binaries,
// decompressed with liblzma loaded through `dlopen` on first use (and skipped where liblzma is missing).

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// MiniDebugInfo: an xz-compressed ELF file in a `.gnu_debugdata` section that holds the `.symtab` of the
/// functions a stripped binary doesn't export (Fedora, RHEL and derived images ship binaries this way).
///
/// liblzma is loaded with `dlopen` on first use, so the symbolizer has no build-time dependency on it; where
/// it is missing, MiniDebugInfo is simply not used.
package enum MiniDebugInfo {
    /// The largest decompressed image accepted, against decompression bombs.
    package static let maximumDecompressedSize = 64 << 20

    /// `lzma_stream_buffer_decode(memlimit, flags, allocator, in, in_pos, in_size, out, out_pos, out_size)`.
    private typealias StreamBufferDecode =
        @convention(c) (
            UnsafeMutablePointer<UInt64>?, UInt32, UnsafeRawPointer?,
            UnsafePointer<UInt8>?, UnsafeMutablePointer<Int>?, Int,
            UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<Int>?, Int
        ) -> Int32

    /// An immutable C function pointer resolved once; sharing it between threads is safe.
    private struct Decoder: @unchecked Sendable {
        let decode: StreamBufferDecode
    }

    private static let decoder: Decoder? = {
        guard let library = dlopen("liblzma.so.5", RTLD_NOW | RTLD_LOCAL),
            let symbol = dlsym(library, "lzma_stream_buffer_decode")
        else {
            return nil
        }
        return Decoder(decode: unsafeBitCast(symbol, to: StreamBufferDecode.self))
    }()

    /// Whether liblzma could be loaded.
    package static var isAvailable: Bool { Self.decoder != nil }

    /// Decompresses an xz stream, or returns nil when liblzma is missing, the data is corrupt or the result
    /// would exceed ``maximumDecompressedSize``.
    package static func decompress(_ compressed: [UInt8]) -> [UInt8]? {
        guard let decoder = Self.decoder, !compressed.isEmpty else {
            return nil
        }
        // LZMA_OK = 0, LZMA_BUF_ERROR = 10 (output buffer too small).
        var capacity = min(max(compressed.count * 8, 1 << 16), Self.maximumDecompressedSize)
        while true {
            var memoryLimit = UInt64(256 << 20)
            var inputPosition = 0
            var outputPosition = 0
            var output = [UInt8](repeating: 0, count: capacity)
            let result = compressed.withUnsafeBufferPointer { input in
                output.withUnsafeMutableBufferPointer { out in
                    decoder.decode(
                        &memoryLimit,
                        0,
                        nil,
                        input.baseAddress,
                        &inputPosition,
                        input.count,
                        out.baseAddress,
                        &outputPosition,
                        out.count
                    )
                }
            }
            if result == 0 {
                output.removeSubrange(min(outputPosition, output.count)...)
                return output
            }
            guard result == 10, capacity < Self.maximumDecompressedSize else {
                return nil
            }
            capacity = min(capacity * 4, Self.maximumDecompressedSize)
        }
    }

    /// The MiniDebugInfo image embedded in `elf`, parsed, when it has one.
    package static func image(in elf: ELFFile) -> ELFFile? {
        guard let section = elf.section(named: ".gnu_debugdata"), !section.hasNoBits,
            section.size <= UInt64(Self.maximumDecompressedSize),
            let compressed = try? elf.data(of: section),
            let bytes = Self.decompress(compressed)
        else {
            return nil
        }
        return try? ELFFile(bytes: bytes)
    }
}
