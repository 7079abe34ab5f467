// ELFError.swift: the errors of the ELF reader (a code, what was being read, an underlying cause), and
// SystemError, a failed system call with its errno.

import HearthBase

/// An error from reading or parsing an ELF file.
///
/// The reader never traps on malformed input: every inconsistency is reported as an `ELFError` whose
/// ``code`` says what kind of problem it was and whose ``message`` says where.
public struct ELFError: CodedError {
    /// The kind of problem. New codes may be added, so don't switch over them exhaustively.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case io
            case truncated
            case notELF
            case unsupported
            case malformed
            case tooLarge
            case notRegularFile
            case stalled
        }

        private let value: Value

        private init(_ value: Value) {
            self.value = value
        }

        /// Opening, stat'ing or reading the file failed (see ``ELFError/cause``).
        public static let io = Code(.io)
        /// A structure extends past the end of the file.
        public static let truncated = Code(.truncated)
        /// The bytes don't start with the ELF magic number.
        public static let notELF = Code(.notELF)
        /// A valid ELF file of a class, byte order or version this reader doesn't handle.
        public static let unsupported = Code(.unsupported)
        /// Header fields are inconsistent (bad entry sizes, indices out of range, overflowing offsets).
        public static let malformed = Code(.malformed)
        /// A structure is larger than the reader is willing to load.
        public static let tooLarge = Code(.tooLarge)
        /// The path names a FIFO, socket, device or directory: never read, as it could block or never end.
        public static let notRegularFile = Code(.notRegularFile)
        /// Opening or reading the file did not return in time (a dead network volume, a FUSE daemon that stopped
        /// answering), or an earlier operation on its device still has not: the operation was abandoned to a worker.
        public static let stalled = Code(.stalled)

        public var description: String {
            switch self.value {
            case .io: "io"
            case .truncated: "truncated"
            case .notELF: "notELF"
            case .unsupported: "unsupported"
            case .malformed: "malformed"
            case .tooLarge: "tooLarge"
            case .notRegularFile: "notRegularFile"
            case .stalled: "stalled"
            }
        }
    }

    /// The kind of problem.
    public var code: Code
    /// A human-readable description of what was being read.
    public var message: String
    /// The underlying error, such as a ``SystemError`` for failed system calls.
    public var cause: (any Error)?

    /// Creates an error.
    public init(code: Code, message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }
}

/// A failed system call: the call's name and `errno`.
public struct SystemError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The system call or C function that failed, for example `"open"`.
    public var function: String
    /// The `errno` value it reported.
    public var errno: Int32

    /// Creates an error.
    public init(function: String, errno: Int32) {
        self.function = function
        self.errno = errno
    }

    public var description: String {
        "\(self.function) failed: errno \(self.errno)"
    }
}
