// Gzip.swift: gzip compression and bounded decompression through the system zlib, for pprof files and what the
// agent pushes to Pyroscope, with typed errors.

internal import CZlib

/// gzip compression (RFC 1952) through the system zlib.
///
/// pprof files are gzip-compressed on disk, and every profiling agent gzips what it pushes to Pyroscope.
public enum Gzip {
    /// Compresses `bytes` into a single gzip member.
    /// - Parameters:
    ///   - bytes: The data to compress.
    ///   - level: The zlib compression level, 0 (none) to 9 (best); the default is 6, zlib's default.
    /// - Returns: The gzip stream, header and trailer included.
    /// - Throws: ``GzipError`` when zlib fails.
    public static func compress(_ bytes: [UInt8], level: Int = 6) throws -> [UInt8] {
        var stream = z_stream()
        var status = CZlib_deflateInit2(&stream, Int32(max(0, min(9, level))), gzipWindowBits)
        guard status == Z_OK else { throw GzipError(code: .initialization, zlibStatus: status) }
        defer { deflateEnd(&stream) }

        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(bytes.count))) + 32)
        var input = bytes
        status = input.withUnsafeMutableBufferPointer { inputBuffer in
            output.withUnsafeMutableBufferPointer { outputBuffer in
                stream.next_in = inputBuffer.baseAddress
                stream.avail_in = UInt32(inputBuffer.count)
                stream.next_out = outputBuffer.baseAddress
                stream.avail_out = UInt32(outputBuffer.count)
                return deflate(&stream, Z_FINISH)
            }
        }
        guard status == Z_STREAM_END else { throw GzipError(code: .compression, zlibStatus: status) }
        output.removeSubrange(Int(stream.total_out)...)
        return output
    }

    /// Decompresses a gzip stream. Concatenated gzip members are decompressed one after another, as `gunzip`
    /// does.
    /// - Parameters:
    ///   - bytes: The gzip stream.
    ///   - maximumSize: The largest output accepted, a guard against decompression bombs.
    /// - Returns: The decompressed data.
    /// - Throws: ``GzipError`` when the data is not valid gzip, is truncated, or decompresses to more than
    ///   `maximumSize` bytes.
    public static func decompress(_ bytes: [UInt8], maximumSize: Int = 1 << 30) throws -> [UInt8] {
        var stream = z_stream()
        var status = CZlib_inflateInit2(&stream, gzipWindowBits)
        guard status == Z_OK else { throw GzipError(code: .initialization, zlibStatus: status) }
        defer { inflateEnd(&stream) }

        var output: [UInt8] = []
        output.reserveCapacity(min(maximumSize, max(64, bytes.count * 4)))
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var input = bytes
        try input.withUnsafeMutableBufferPointer { inputBuffer in
            stream.next_in = inputBuffer.baseAddress
            stream.avail_in = UInt32(inputBuffer.count)
            while true {
                let produced = chunk.withUnsafeMutableBufferPointer { chunkBuffer in
                    stream.next_out = chunkBuffer.baseAddress
                    stream.avail_out = UInt32(chunkBuffer.count)
                    status = inflate(&stream, Z_NO_FLUSH)
                    return chunkBuffer.count - Int(stream.avail_out)
                }
                guard output.count + produced <= maximumSize else {
                    throw GzipError(code: .tooLarge, zlibStatus: status)
                }
                output.append(contentsOf: chunk[..<produced])
                switch status {
                case Z_STREAM_END:
                    // Another gzip member may follow.
                    if stream.avail_in == 0 { return }
                    status = inflateReset(&stream)
                    guard status == Z_OK else { throw GzipError(code: .decompression, zlibStatus: status) }
                case Z_OK:
                    continue
                case Z_BUF_ERROR where produced > 0:
                    continue
                case Z_BUF_ERROR:
                    throw GzipError(code: .truncated, zlibStatus: status)
                default:
                    throw GzipError(code: .decompression, zlibStatus: status)
                }
            }
        }
        return output
    }

    /// Whether `bytes` starts with the gzip magic number (`1f 8b`).
    public static func isCompressed(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
    }

    /// zlib's windowBits for a gzip wrapper: 15 (a 32 KiB window) + 16.
    private static let gzipWindowBits: Int32 = 31
}

/// An error from ``Gzip``.
public struct GzipError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case initialization
            case compression
            case decompression
            case truncated
            case tooLarge
        }
        private let value: Value

        /// zlib could not set up a stream.
        public static let initialization = Code(value: .initialization)
        /// zlib failed to compress.
        public static let compression = Code(value: .compression)
        /// The data is not valid gzip.
        public static let decompression = Code(value: .decompression)
        /// The gzip stream ended early.
        public static let truncated = Code(value: .truncated)
        /// The data decompresses to more than the allowed size.
        public static let tooLarge = Code(value: .tooLarge)

        public var description: String {
            switch self.value {
            case .initialization: "initialization"
            case .compression: "compression"
            case .decompression: "decompression"
            case .truncated: "truncated"
            case .tooLarge: "tooLarge"
            }
        }
    }

    /// What went wrong.
    public var code: Code
    /// The zlib status code (`Z_DATA_ERROR` is -3, `Z_BUF_ERROR` -5, ...).
    public var zlibStatus: Int32

    public var description: String {
        "GzipError(\(self.code), zlib status \(self.zlibStatus))"
    }
}
