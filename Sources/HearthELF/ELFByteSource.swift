// ELFByteSource.swift: where an ELF file's bytes come from (a buffer, or a descriptor read with `pread`), each read
// checked against the size recorded at creation, and bounds-checked field access in either byte order.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Where an ``ELFFile``'s bytes come from: an in-memory buffer or an open file descriptor read with `pread`.
///
/// Only the parts the parser asks for are read, so a large binary is never held in memory as a whole.
/// Every read is checked against the size recorded when the source was created; a file that shrinks
/// afterwards makes reads fail with ``ELFError/Code/truncated`` rather than fault, which `mmap` could not
/// promise.
package final class ELFByteSource: Sendable {
    private enum Storage: Sendable {
        case memory([UInt8])
        case file(WorkloadFile)
    }

    /// The largest single read (one section, one table) the parser performs.
    package static let maximumReadSize: UInt64 = 512 << 20

    /// How far one read may go beyond the bytes the file system allocated: a file smaller than this is read as it
    /// is; a larger read from a sparse file (a 500 MiB `.eh_frame` in an 8 KiB file) is refused before any memory
    /// is spent on it.
    package static let sparseSlack: UInt64 = 1 << 20

    private let storage: Storage
    /// The size of the data in bytes.
    package let size: UInt64
    /// Bytes the data really occupies: the buffer, or the blocks the file system allocated.
    package let allocatedBytes: UInt64

    package init(bytes: [UInt8]) {
        self.storage = .memory(bytes)
        self.size = UInt64(bytes.count)
        self.allocatedBytes = self.size
    }

    /// Reads an opened workload file. It is kept open while the source lives.
    package init(file: WorkloadFile) {
        self.storage = .file(file)
        self.size = file.size
        self.allocatedBytes = file.allocatedBytes
    }

    /// Opens `path` read-only, without blocking (a FIFO or device is refused, never waited for). The path is
    /// resolved as the agent sees it: for a workload's files use ``init(file:)`` with ``WorkloadFile/open(_:inRoot:useOpenat2:)``.
    package convenience init(path: String) throws(ELFError) {
        self.init(file: try WorkloadFile.open(procfsPath: path))
    }

    /// Bytes this source holds in memory: the buffer's size, or 0 for a file descriptor.
    package var residentByteCount: Int {
        switch self.storage {
        case .memory(let bytes): bytes.count
        case .file: 0
        }
    }

    /// Throws as ``read(offset:count:what:)`` would for the range, without reading it; returns its end.
    @discardableResult
    package func checkReadable(
        offset: UInt64,
        count: UInt64,
        what: @autoclosure () -> String
    ) throws(ELFError) -> UInt64 {
        let (end, overflow) = offset.addingReportingOverflow(count)
        guard !overflow, end <= self.size else {
            throw ELFError(
                code: .truncated,
                message: "\(what()) at offset \(offset) size \(count) lies outside the \(self.size)-byte file"
            )
        }
        guard count <= Self.maximumReadSize else {
            throw ELFError(code: .tooLarge, message: "\(what()) is \(count) bytes")
        }
        guard count <= self.allocatedBytes &+ Self.sparseSlack else {
            throw ELFError(
                code: .tooLarge,
                message: "\(what()) claims \(count) bytes of a sparse file with \(self.allocatedBytes) bytes allocated"
            )
        }
        return end
    }

    /// Reads `count` bytes at `offset`, or throws if any part of the range lies outside the data.
    package func read(offset: UInt64, count: UInt64, what: @autoclosure () -> String) throws(ELFError) -> [UInt8] {
        let end = try self.checkReadable(offset: offset, count: count, what: what())
        if count == 0 {
            return []
        }
        switch self.storage {
        case .memory(let bytes):
            // Both values are ≤ bytes.count, checked above.
            return Array(bytes[Int(offset)..<Int(end)])
        case .file(let file):
            return try file.read(exactly: Int(count), at: offset, what: what())
        }
    }
}

/// Bounds-checked little- or big-endian field access over a byte array.
///
/// Public so that readers of other ELF sections (HearthUnwind's `.eh_frame` parser) share these checks.
public struct ELFBytes: Sendable {
    /// The bytes read.
    public let bytes: [UInt8]
    /// Whether multi-byte fields are little-endian.
    public let littleEndian: Bool

    /// Wraps `bytes`; fields are read in the given byte order.
    public init(bytes: [UInt8], littleEndian: Bool) {
        self.bytes = bytes
        self.littleEndian = littleEndian
    }

    /// The number of bytes.
    public var count: Int { self.bytes.count }

    @inline(__always)
    private func check(_ offset: Int, _ width: Int) throws(ELFError) {
        guard offset >= 0, offset <= self.bytes.count - width else {
            throw ELFError(code: .truncated, message: "field at \(offset) width \(width) in \(self.bytes.count) bytes")
        }
    }

    /// The field at `offset`; throws ``ELFError/Code/truncated`` if it lies outside the bytes.
    public func u8(_ offset: Int) throws(ELFError) -> UInt8 {
        try self.check(offset, 1)
        return self.bytes[offset]
    }

    /// The field at `offset`; throws ``ELFError/Code/truncated`` if it lies outside the bytes.
    public func u16(_ offset: Int) throws(ELFError) -> UInt16 {
        try self.check(offset, 2)
        let a = UInt16(self.bytes[offset])
        let b = UInt16(self.bytes[offset + 1])
        return self.littleEndian ? a | b << 8 : a << 8 | b
    }

    /// The field at `offset`; throws ``ELFError/Code/truncated`` if it lies outside the bytes.
    public func u32(_ offset: Int) throws(ELFError) -> UInt32 {
        try self.check(offset, 4)
        var value: UInt32 = 0
        for i in 0..<4 {
            let byte = UInt32(self.bytes[offset + i])
            value |= self.littleEndian ? byte << (8 * UInt32(i)) : byte << (8 * UInt32(3 - i))
        }
        return value
    }

    /// The field at `offset`; throws ``ELFError/Code/truncated`` if it lies outside the bytes.
    public func u64(_ offset: Int) throws(ELFError) -> UInt64 {
        try self.check(offset, 8)
        var value: UInt64 = 0
        for i in 0..<8 {
            let byte = UInt64(self.bytes[offset + i])
            value |= self.littleEndian ? byte << (8 * UInt64(i)) : byte << (8 * UInt64(7 - i))
        }
        return value
    }

    /// An address- or offset-sized field: 8 bytes in ELF64, 4 bytes in ELF32.
    package func word(_ offset: Int, is64: Bool) throws(ELFError) -> UInt64 {
        is64 ? try self.u64(offset) : UInt64(try self.u32(offset))
    }

    /// The NUL-terminated string starting at `offset`, or nil if `offset` is out of range or no NUL follows.
    package func cString(at offset: Int) -> ArraySlice<UInt8>? {
        guard offset >= 0, offset < self.bytes.count else {
            return nil
        }
        guard let end = self.bytes[offset...].firstIndex(of: 0) else {
            return nil
        }
        return self.bytes[offset..<end]
    }
}
