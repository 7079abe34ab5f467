// OperatorError.swift: errors of the operator, as a struct with an open code and a cause.

import HearthBase

/// An operator failure.
public struct OperatorError: CodedError, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum _Code: String {
            case applyFailed, deleteFailed, statusFailed, finalizerFailed, invalidInput, datasourceCleanupFailed
        }
        private let code: _Code
        private init(_ code: _Code) { self.code = code }
        /// Server-side apply of an agent object failed.
        public static let applyFailed = Code(.applyFailed)
        /// Deleting an agent object failed.
        public static let deleteFailed = Code(.deleteFailed)
        /// Writing a target's status failed.
        public static let statusFailed = Code(.statusFailed)
        /// Adding or removing the finalizer failed.
        public static let finalizerFailed = Code(.finalizerFailed)
        /// A deleted target's Grafana datasource could not be removed yet.
        public static let datasourceCleanupFailed = Code(.datasourceCleanupFailed)
        /// Input (a file for `render`, a flag) is unusable.
        public static let invalidInput = Code(.invalidInput)
        public var description: String { self.code.rawValue }
    }

    public var code: Code
    public var message: String
    public var cause: (any Error & Sendable)?
}
