// CodedError.swift: the one shape of Hearth's errors that carry an open code, a message saying what was being done,
// and the error that caused it, with the one description they share: `KubeError(notFound): message (cause: …)`.

/// An error with a code (an open set: new codes may come, so don't switch over them exhaustively), a message
/// saying what was being done, and the underlying error when there is one.
public protocol CodedError: Error, CustomStringConvertible {
    associatedtype Code: CustomStringConvertible
    associatedtype Cause = any Error

    /// The kind of problem.
    var code: Code { get }
    /// What was being done, in words.
    var message: String { get }
    /// The underlying error, such as a system call's or the transport's.
    var cause: Cause? { get }
    /// What the description says in parentheses after the type's name: the code, and whatever else identifies
    /// the failure (``KubeError`` adds the HTTP status).
    var codeDescription: String { get }
}

extension CodedError {
    public var codeDescription: String { "\(self.code)" }

    /// `TypeName(code): message`, then ` (cause: …)` when there is a cause.
    public var description: String {
        "\(Self.self)(\(self.codeDescription)): \(self.message)" + (self.cause.map { " (cause: \($0))" } ?? "")
    }
}
