// GrafanaClient.swift: the datasource routes of Grafana's HTTP API (by uid; the deprecated id routes are never
// used), with a timeout on every call, credentials read per call (a rotated token is used at once), errors typed
// by status code, and a request counter by method and code.

import AsyncHTTPClient
import Foundation
import Metrics
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// How the client authenticates. The description never shows the secret.
public enum GrafanaCredentials: Sendable, Hashable, CustomStringConvertible {
    /// A service-account token, sent as `Authorization: Bearer`.
    case token(String)
    /// A user's name and password (basic auth).
    case basic(username: String, password: String)

    var authorization: String {
        switch self {
        case .token(let token): "Bearer \(token)"
        case .basic(let username, let password):
            "Basic " + Data("\(username):\(password)".utf8).base64EncodedString()
        }
    }

    public var description: String {
        switch self {
        case .token: "service-account token"
        case .basic(let username, _): "basic auth as \(username)"
        }
    }
}

/// A client of one Grafana's datasource API.
public struct GrafanaClient: Sendable {
    public struct Configuration: Sendable {
        /// Grafana's root URL, with a sub-path if it is served under one (`http://grafana.monitoring.svc/grafana`).
        public var url: String
        /// The limit of every call, connection included.
        public var timeout: Duration = .seconds(10)
        public var userAgent: String = "hearth-operator/0.1"

        public init(url: String) { self.url = url.hasSuffix("/") ? String(url.dropLast()) : url }
    }

    public let configuration: Configuration
    let credentials: @Sendable () async throws -> GrafanaCredentials
    let httpClient: HTTPClient
    let metricsFactory: any MetricsFactory

    /// - Parameter credentials: called before every request, so a rotated Secret is used without a restart. An
    ///   error it throws fails the call with ``GrafanaError/Code/invalidConfiguration`` and sends nothing.
    public init(
        configuration: Configuration,
        credentials: @escaping @Sendable () async throws -> GrafanaCredentials,
        httpClient: HTTPClient = .shared,
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) {
        self.configuration = configuration
        self.credentials = credentials
        self.httpClient = httpClient
        self.metricsFactory = metricsFactory
    }

    // MARK: Datasources

    /// The datasource with this uid, or nil (404).
    public func datasource(uid: String) async throws(GrafanaError) -> Datasource? {
        try await self.optional(.GET, "/api/datasources/uid/" + Self.escape(uid))
    }

    /// The datasource with this name, or nil (404). Only to explain a name clash: datasources are never adopted
    /// by name.
    public func datasource(name: String) async throws(GrafanaError) -> Datasource? {
        try await self.optional(.GET, "/api/datasources/name/" + Self.escape(name))
    }

    /// Every datasource of the organization (Grafana does not paginate this list).
    public func datasources() async throws(GrafanaError) -> [Datasource] {
        let (status, body) = try await self.send(.GET, "/api/datasources")
        return try self.decode([Datasource].self, status: status, body: body, request: "GET /api/datasources")
    }

    /// Creates a datasource (`POST /api/datasources`); 409 when its name or uid is taken.
    public func createDatasource(_ command: DatasourceCommand) async throws(GrafanaError) -> Datasource {
        try await self.write(.POST, "/api/datasources", command)
    }

    /// Updates the datasource with `uid` (`PUT /api/datasources/uid/{uid}`); 409 when the name is taken by another
    /// datasource or `command.version` is older than Grafana's, 403 when it is read-only.
    public func updateDatasource(uid: String, _ command: DatasourceCommand) async throws(GrafanaError) -> Datasource {
        try await self.write(.PUT, "/api/datasources/uid/" + Self.escape(uid), command)
    }

    /// Deletes the datasource with `uid`; false when there was none (404).
    @discardableResult
    public func deleteDatasource(uid: String) async throws(GrafanaError) -> Bool {
        let path = "/api/datasources/uid/" + Self.escape(uid)
        let (status, body) = try await self.send(.DELETE, path)
        if status == 404 { return false }
        try self.check(status: status, body: body, request: "DELETE \(path)")
        return true
    }

    /// `GET /api/health`: Grafana answers and its database works (no credentials needed).
    public func health() async throws(GrafanaError) {
        let (status, body) = try await self.send(.GET, "/api/health", authenticated: false)
        try self.check(status: status, body: body, request: "GET /api/health")
    }

    // MARK: Plumbing

    struct Created: Decodable {
        var datasource: Datasource
    }

    func optional(_ method: HTTPMethod, _ path: String) async throws(GrafanaError) -> Datasource? {
        let (status, body) = try await self.send(method, path)
        if status == 404 { return nil }
        return try self.decode(Datasource.self, status: status, body: body, request: "\(method) \(path)")
    }

    func write(
        _ method: HTTPMethod,
        _ path: String,
        _ command: DatasourceCommand
    ) async throws(GrafanaError)
        -> Datasource
    {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let body: Data
        do {
            body = try encoder.encode(command)
        } catch {
            throw GrafanaError(
                code: .invalidConfiguration,
                request: "\(method) \(path)",
                message: "cannot encode the datasource",
                cause: error
            )
        }
        let (status, answer) = try await self.send(method, path, body: body)
        return try self.decode(Created.self, status: status, body: answer, request: "\(method) \(path)").datasource
    }

    func decode<Value: Decodable>(
        _ type: Value.Type,
        status: Int,
        body: ByteBuffer,
        request: String
    )
        throws(GrafanaError) -> Value
    {
        try self.check(status: status, body: body, request: request)
        do {
            return try JSONDecoder().decode(Value.self, from: body)
        } catch {
            throw GrafanaError(
                code: .invalidResponse,
                status: status,
                request: request,
                message: "the answer is not the documented JSON",
                cause: error
            )
        }
    }

    /// Throws for a status other than 2xx, with Grafana's `message`.
    func check(status: Int, body: ByteBuffer, request: String) throws(GrafanaError) {
        guard !(200..<300).contains(status) else { return }
        struct Message: Decodable { var message: String? }
        let message =
            (try? JSONDecoder().decode(Message.self, from: body))?.message
            ?? String(buffer: body).prefix(512).trimmingCharacters(in: .whitespacesAndNewlines)
        throw GrafanaError(code: .of(status: status), status: status, request: request, message: message)
    }

    func send(
        _ method: HTTPMethod,
        _ path: String,
        body: Data? = nil,
        authenticated: Bool = true
    )
        async throws(GrafanaError) -> (Int, ByteBuffer)
    {
        let request = "\(method) \(path)"
        var http = HTTPClientRequest(url: self.configuration.url + path)
        http.method = method
        http.headers.add(name: "Accept", value: "application/json")
        http.headers.add(name: "User-Agent", value: self.configuration.userAgent)
        if authenticated {
            do {
                http.headers.add(name: "Authorization", value: try await self.credentials().authorization)
            } catch {
                throw GrafanaError(
                    code: .invalidConfiguration,
                    request: request,
                    message: "no usable Grafana credentials: \(error)",
                    cause: error
                )
            }
        }
        if let body {
            http.headers.add(name: "Content-Type", value: "application/json")
            http.body = .bytes(ByteBuffer(data: body))
        }
        let deadline = TimeAmount(self.configuration.timeout)
        do {
            let response = try await self.httpClient.execute(http, timeout: deadline)
            let answer = try await response.body.collect(upTo: 4 << 20)
            self.count(method, code: String(response.status.code))
            return (Int(response.status.code), answer)
        } catch {
            self.count(method, code: "error")
            throw GrafanaError(
                code: .unreachable,
                request: request,
                message: "no answer from \(self.configuration.url): \(error)",
                cause: error
            )
        }
    }

    func count(_ method: HTTPMethod, code: String) {
        Counter(
            label: "hearth_grafana_requests_total",
            dimensions: [("method", method.rawValue), ("code", code)],
            factory: self.metricsFactory
        ).increment()
    }

    /// A path segment: uids are `[a-zA-Z0-9_-]`, but names may hold anything.
    static func escape(_ segment: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "/?#%")
        return segment.addingPercentEncoding(withAllowedCharacters: allowed) ?? segment
    }
}
