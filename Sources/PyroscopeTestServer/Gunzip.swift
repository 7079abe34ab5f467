// Gunzip.swift: bounded gzip decompression through the system zlib. Limits apply to decompressed bytes, so the
// output is capped while inflating: a small bomb must never allocate unbounded memory.

import CZlib

enum Gunzip {
    enum Outcome {
        case data([UInt8])
        /// The output exceeded the limit; `size` is the decompressed size, counted (without keeping the bytes)
        /// up to `countLimit`, so it is a lower bound when it equals that.
        case tooLarge(size: Int)
    }

    struct Failure: Error, CustomStringConvertible {
        var message: String
        var description: String { self.message }
    }

    /// Whether `bytes` starts with the gzip magic number (`1f 8b`).
    static func isGzip(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B
    }

    /// Inflates a gzip stream (concatenated members too, as Go's gzip.Reader does), keeping at most `limit`
    /// bytes.
    static func decompress(_ bytes: [UInt8], limit: Int, countLimit: Int = 1 << 30) throws(Failure) -> Outcome {
        var stream = z_stream()
        // 15 + 16: a 32 KiB window with a gzip wrapper.
        guard CZlib_inflateInit2(&stream, 15 + 16) == Z_OK else { throw Failure(message: "zlib initialization failed") }
        defer { inflateEnd(&stream) }

        var output: [UInt8] = []
        output.reserveCapacity(min(limit, max(1024, bytes.count * 4)))
        var total = 0
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var input = bytes
        var status: Int32 = Z_OK
        var failure: Failure?
        input.withUnsafeMutableBufferPointer { inputBuffer in
            stream.next_in = inputBuffer.baseAddress
            stream.avail_in = UInt32(inputBuffer.count)
            while true {
                let produced = chunk.withUnsafeMutableBufferPointer { chunkBuffer in
                    stream.next_out = chunkBuffer.baseAddress
                    stream.avail_out = UInt32(chunkBuffer.count)
                    status = inflate(&stream, Z_NO_FLUSH)
                    return chunkBuffer.count - Int(stream.avail_out)
                }
                total += produced
                if total <= limit {
                    output.append(contentsOf: chunk[..<produced])
                } else if total >= countLimit {
                    return
                }
                switch status {
                case Z_STREAM_END:
                    if stream.avail_in == 0 { return }
                    guard inflateReset(&stream) == Z_OK else {
                        failure = Failure(message: "gzip: invalid member")
                        return
                    }
                case Z_OK:
                    continue
                case Z_BUF_ERROR where produced > 0:
                    continue
                case Z_BUF_ERROR:
                    failure = Failure(message: "gzip: unexpected EOF")
                    return
                default:
                    failure = Failure(message: "gzip: invalid data (zlib status \(status))")
                    return
                }
            }
        }
        if let failure { throw failure }
        return total > limit ? .tooLarge(size: total) : .data(output)
    }
}
