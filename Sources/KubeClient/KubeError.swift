// KubeError.swift: typed errors decoded from metav1.Status, plus client-side failures.

import HearthBase
import KubeModel

/// An error from the Kubernetes API or from the client.
public struct KubeError: CodedError, Sendable {
    /// The kind of error (open set).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum _Code: String {
            case notFound, alreadyExists, conflict, invalid, gone, forbidden, unauthorized, badRequest
            case tooManyRequests, serverError, timeout, methodNotAllowed, unsupportedMediaType
            case transport, decoding, invalidConfiguration, missingCredentials, other
        }
        private let code: _Code
        private init(_ code: _Code) { self.code = code }

        public static let notFound = Code(.notFound)
        public static let alreadyExists = Code(.alreadyExists)
        /// A stale resourceVersion or a server-side apply conflict.
        public static let conflict = Code(.conflict)
        /// 422: the object failed validation; ``KubeError/causes`` names the fields.
        public static let invalid = Code(.invalid)
        /// 410: the resourceVersion or continue token is too old (relist).
        public static let gone = Code(.gone)
        public static let forbidden = Code(.forbidden)
        public static let unauthorized = Code(.unauthorized)
        public static let badRequest = Code(.badRequest)
        public static let tooManyRequests = Code(.tooManyRequests)
        public static let serverError = Code(.serverError)
        /// The call did not finish within its timeout (client side) or the server answered 504.
        public static let timeout = Code(.timeout)
        public static let methodNotAllowed = Code(.methodNotAllowed)
        public static let unsupportedMediaType = Code(.unsupportedMediaType)
        /// The server could not be reached or the connection failed.
        public static let transport = Code(.transport)
        public static let decoding = Code(.decoding)
        /// A kubeconfig or in-cluster setting is malformed; the message names the file and field.
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// No usable credentials were found.
        public static let missingCredentials = Code(.missingCredentials)
        public static let other = Code(.other)

        public var description: String { self.code.rawValue }
    }

    public var code: Code
    public var message: String
    /// The HTTP status code, when the server answered.
    public var httpStatus: Int?
    /// The server's Status body, when there was one.
    public var status: Status?
    /// The underlying error, if any.
    public var cause: (any Error & Sendable)?

    public init(
        code: Code,
        message: String,
        httpStatus: Int? = nil,
        status: Status? = nil,
        cause: (any Error & Sendable)? = nil
    ) {
        self.code = code
        self.message = message
        self.httpStatus = httpStatus
        self.status = status
        self.cause = cause
    }

    /// Field-level causes of a 422 or an apply conflict.
    public var causes: [StatusCause] { self.status?.details?.causes ?? [] }

    /// The server's `Retry-After` hint (seconds), if any.
    public var retryAfterSeconds: Int? { self.status?.details?.retryAfterSeconds }

    /// Builds the error for an HTTP status and an optional Status body.
    public init(httpStatus: Int, status: Status?) {
        let reason = status?.reason ?? ""
        let code: Code
        switch (httpStatus, reason) {
        case (_, "AlreadyExists"): code = .alreadyExists
        case (404, _), (_, "NotFound"): code = .notFound
        case (409, _): code = .conflict
        case (422, _), (_, "Invalid"): code = .invalid
        case (410, _), (_, "Expired"), (_, "Gone"): code = .gone
        case (403, _): code = .forbidden
        case (401, _): code = .unauthorized
        case (400, _): code = .badRequest
        case (405, _): code = .methodNotAllowed
        case (415, _): code = .unsupportedMediaType
        case (429, _): code = .tooManyRequests
        case (504, _), (_, "Timeout"): code = .timeout
        case (500..., _): code = .serverError
        default: code = .other
        }
        self.init(code: code, message: status?.message ?? "HTTP \(httpStatus)", httpStatus: httpStatus, status: status)
    }

    /// The code, and the HTTP status when the server answered: `KubeError(notFound, 404): …`.
    public var codeDescription: String { "\(self.code)" + (self.httpStatus.map { ", \($0)" } ?? "") }

    /// Whether retrying the same call later can succeed (429, 5xx, timeouts, transport failures).
    public var isRetryable: Bool {
        [.tooManyRequests, .serverError, .timeout, .transport].contains(self.code)
    }
}
