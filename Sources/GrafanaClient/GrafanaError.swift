// GrafanaError.swift: failures of the Grafana HTTP API, typed by status code (never by message text, which
// changes between Grafana versions), with Grafana's own message kept for people.

import HearthBase

/// A failed call to Grafana's HTTP API. Its description is its own (the request and Grafana's answer, as people
/// read it in a condition message), not ``CodedError``'s.
public struct GrafanaError: CodedError, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum _Code: String {
            case badRequest, unauthorized, forbidden, notFound, conflict, serverError, unexpectedStatus
            case unreachable, invalidResponse, invalidConfiguration
        }
        private let code: _Code
        private init(_ code: _Code) { self.code = code }
        /// 400: Grafana rejected the body (a missing field, an invalid URL or uid).
        public static let badRequest = Code(.badRequest)
        /// 401: no or wrong credentials.
        public static let unauthorized = Code(.unauthorized)
        /// 403: the credentials lack a permission, or the datasource is read-only (file-provisioned).
        public static let forbidden = Code(.forbidden)
        /// 404: no such datasource.
        public static let notFound = Code(.notFound)
        /// 409: the name or uid is taken, or the datasource changed since it was read (stale version).
        public static let conflict = Code(.conflict)
        /// 5xx.
        public static let serverError = Code(.serverError)
        /// Any other status.
        public static let unexpectedStatus = Code(.unexpectedStatus)
        /// No answer: connection refused or reset, DNS, TLS, or the timeout passed.
        public static let unreachable = Code(.unreachable)
        /// An answer that is not the documented JSON.
        public static let invalidResponse = Code(.invalidResponse)
        /// The client's settings or credentials are unusable (nothing was sent).
        public static let invalidConfiguration = Code(.invalidConfiguration)
        public var description: String { self.code.rawValue }

        /// The code of an HTTP status.
        public static func of(status: Int) -> Code {
            switch status {
            case 400: .badRequest
            case 401: .unauthorized
            case 403: .forbidden
            case 404: .notFound
            case 409: .conflict
            case 500...599: .serverError
            default: .unexpectedStatus
            }
        }
    }

    public var code: Code
    /// The HTTP status, when Grafana answered.
    public var status: Int?
    /// `METHOD /path` of the call.
    public var request: String
    /// Grafana's message (`{"message": …}`), or what went wrong on the way.
    public var message: String
    public var cause: (any Error & Sendable)?

    public init(
        code: Code,
        status: Int? = nil,
        request: String,
        message: String,
        cause: (any Error & Sendable)? = nil
    ) {
        self.code = code
        self.status = status
        self.request = request
        self.message = message
        self.cause = cause
    }

    public var description: String {
        "\(self.request): " + (self.status.map { "\($0) " } ?? "") + self.message
    }
}
