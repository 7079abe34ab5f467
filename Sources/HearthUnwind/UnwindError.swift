// UnwindError.swift: why building an unwind table failed for a whole file (the file can't be read, has no call
// frame information, or is not x86-64). Damage inside one FDE is never an error: it is counted in the table's
// statistics instead.

import HearthBase

/// An error that stops an ``UnwindTable`` from being built for a file.
///
/// Damaged call frame information inside a readable section never produces this error: the damaged FDE's
/// range becomes "no info" and is counted in ``UnwindTable/Statistics/malformedFDEs``.
public struct UnwindError: CodedError {
    /// The kind of problem. New codes may be added, so don't switch over them exhaustively.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case unreadable
            case unsupportedArchitecture
            case noCallFrameInformation
            case tooLarge
        }

        private let value: Value

        private init(_ value: Value) {
            self.value = value
        }

        /// The ELF file or one of its CFI sections could not be read (see ``UnwindError/cause``).
        public static let unreadable = Code(.unreadable)
        /// The file is not a little-endian ELF64 x86-64 file, the only kind these tables describe.
        public static let unsupportedArchitecture = Code(.unsupportedArchitecture)
        /// The file has neither `.eh_frame` nor `.debug_frame`.
        public static let noCallFrameInformation = Code(.noCallFrameInformation)
        /// A CFI section larger than ``UnwindTable/Limits`` allows: not read.
        public static let tooLarge = Code(.tooLarge)

        public var description: String {
            switch self.value {
            case .unreadable: "unreadable"
            case .unsupportedArchitecture: "unsupportedArchitecture"
            case .noCallFrameInformation: "noCallFrameInformation"
            case .tooLarge: "tooLarge"
            }
        }
    }

    /// The kind of problem.
    public var code: Code
    /// What was being read.
    public var message: String
    /// The underlying error, such as an `ELFError`.
    public var cause: (any Error)?

    /// Creates an error.
    public init(code: Code, message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }
}

/// Why one CIE or FDE could not be used. Internal: it only ever becomes a count and a debug log line.
struct CFIEntryError: Error, CustomStringConvertible {
    var message: String
    var cause: (any Error)?

    init(_ message: String, cause: (any Error)? = nil) {
        self.message = message
        self.cause = cause
    }

    var description: String {
        if let cause = self.cause {
            return "\(self.message) (\(cause))"
        }
        return self.message
    }
}
