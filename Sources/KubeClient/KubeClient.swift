// KubeClient.swift: the HTTP transport to the API server over AsyncHTTPClient: authentication, TLS, rate limits,
// timeouts, typed errors, metrics, and streamed watch bodies.

import AsyncHTTPClient
import Foundation
import HearthBase
import KubeModel
import Logging
import Metrics
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization

/// One request to the API server.
public struct KubeRequest: Sendable {
    public var method: HTTPMethod
    public var path: String
    public var query: [(String, String)]
    public var body: Data?
    public var contentType: String
    public var accept: String
    /// Overrides the client's timeout.
    public var timeout: Duration?

    public init(
        method: HTTPMethod,
        path: String,
        query: [(String, String)] = [],
        body: Data? = nil,
        contentType: String = "application/json",
        accept: String = "application/json",
        timeout: Duration? = nil
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.body = body
        self.contentType = contentType
        self.accept = accept
        self.timeout = timeout
    }
}

/// A response with its whole body.
public struct KubeResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: ByteBuffer

    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        do {
            return try KubeJSON.decode(type, bytes: self.body.readableBytesView)
        } catch {
            throw KubeError(
                code: .decoding,
                message: "cannot decode \(T.self): \(error)",
                httpStatus: self.status,
                cause: error
            )
        }
    }
}

/// A client for one API server. Create it with ``withKubeClient(configuration:logger:_:)`` or run it as a Service
/// (it shuts its HTTP clients down when the service ends).
public final class KubeClient: Sendable {
    public let configuration: ClientConfiguration
    let logger: Logger
    let http: HTTPClient
    let watchHTTP: HTTPClient
    let limiter: RateLimiter
    let credentials: CredentialProvider
    let requestCounterFactory: any MetricsFactory

    public init(
        configuration: ClientConfiguration,
        logger: Logger,
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    )
        throws
    {
        self.configuration = configuration
        self.logger = logger
        self.limiter = RateLimiter(qps: configuration.qps, burst: configuration.burst)
        self.credentials = CredentialProvider(configuration: configuration, logger: logger)
        self.requestCounterFactory = metricsFactory
        let tls = try Self.tlsConfiguration(configuration)
        func make(read: Duration, connections: Int? = nil) -> HTTPClient {
            var httpConfiguration = HTTPClient.Configuration()
            if let connections {
                httpConfiguration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = connections
            }
            httpConfiguration.tlsConfiguration = tls
            httpConfiguration.timeout = .init(connect: .seconds(10), read: TimeAmount(read))
            httpConfiguration.decompression = .disabled
            httpConfiguration.redirectConfiguration = .disallow
            return HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: httpConfiguration)
        }
        self.http = make(read: configuration.timeout)
        self.watchHTTP = make(
            read: configuration.watchIdleTimeout,
            connections: max(1, configuration.maxConcurrentWatches)
        )
    }

    static func tlsConfiguration(_ configuration: ClientConfiguration) throws -> TLSConfiguration? {
        guard configuration.server.hasPrefix("https://") else { return nil }
        var tls = TLSConfiguration.makeClientConfiguration()
        let source = configuration.source
        do {
            if let ca = configuration.certificateAuthority {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(ca))
            }
        } catch {
            throw KubeError(
                code: .invalidConfiguration,
                message: "\(source): certificate-authority: not a PEM certificate",
                cause: error
            )
        }
        if configuration.insecureSkipTLSVerify { tls.certificateVerification = .none }
        var pair = configuration.clientCertificate
        if case .clientCertificate(let certificate, let key) = configuration.credentials { pair = (certificate, key) }
        if let pair {
            do {
                tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(pair.certificate).map { .certificate($0) }
            } catch {
                throw KubeError(
                    code: .invalidConfiguration,
                    message: "\(source): client-certificate: not a PEM certificate",
                    cause: error
                )
            }
            do {
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: pair.key, format: .pem))
            } catch {
                throw KubeError(
                    code: .invalidConfiguration,
                    message: "\(source): client-key: not a PEM private key",
                    cause: error
                )
            }
        }
        return tls
    }

    /// Shuts the HTTP clients down.
    public func shutdown() async throws {
        try await self.http.shutdown()
        try await self.watchHTTP.shutdown()
    }

    // MARK: Requests

    func url(_ path: String, _ query: [(String, String)]) -> String {
        var components = URLComponents()
        components.path = path
        if !query.isEmpty { components.queryItems = query.map { URLQueryItem(name: $0.0, value: $0.1) } }
        var encoded = components.percentEncodedQuery ?? ""
        encoded = encoded.replacingOccurrences(of: "+", with: "%2B")
        return self.configuration.server + (components.percentEncodedPath) + (encoded.isEmpty ? "" : "?" + encoded)
    }

    func httpRequest(_ request: KubeRequest) async throws -> HTTPClientRequest {
        var http = HTTPClientRequest(url: self.url(request.path, request.query))
        http.method = request.method
        http.headers.add(name: "Accept", value: request.accept)
        http.headers.add(name: "User-Agent", value: self.configuration.userAgent)
        if let authorization = try await self.credentials.authorizationHeader() {
            http.headers.add(name: "Authorization", value: authorization)
        }
        if let body = request.body {
            http.headers.add(name: "Content-Type", value: request.contentType)
            http.body = .bytes(ByteBuffer(data: body))
        }
        return http
    }

    func transportError(_ error: any Error, _ request: KubeRequest) -> KubeError {
        if let error = error as? KubeError { return error }
        if let error = error as? HTTPClientError,
            error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout
        {
            return KubeError(
                code: .timeout,
                message: "\(request.method.rawValue) \(request.path): timed out",
                cause: error
            )
        }
        if error is CancellationError { return KubeError(code: .other, message: "cancelled", cause: error) }
        return KubeError(
            code: .transport,
            message: "\(request.method.rawValue) \(request.path): \(error)",
            cause: error
        )
    }

    func count(_ method: HTTPMethod, _ code: String) {
        Counter(
            label: "rest_client_requests_total",
            dimensions: [("code", code), ("method", method.rawValue), ("host", self.hostLabel)],
            factory: self.requestCounterFactory
        ).increment()
    }

    var hostLabel: String {
        URLComponents(string: self.configuration.server).map { "\($0.host ?? ""):\($0.port.map(String.init) ?? "")" }
            ?? ""
    }

    /// Sends a request and returns the whole response; statuses ≥ 400 throw a ``KubeError`` decoded from the
    /// server's Status.
    public func send(_ request: KubeRequest) async throws -> KubeResponse {
        try await self.limiter.acquire()
        let timeout = request.timeout ?? self.configuration.timeout
        let start = ContinuousClock.now
        do {
            let http = try await self.httpRequest(request)
            let response = try await self.http.execute(
                http,
                timeout: TimeAmount(timeout),
                logger: self.logger
            )
            let body = try await response.body.collect(upTo: 256 << 20)
            self.count(request.method, String(response.status.code))
            Timer(
                label: "rest_client_request_duration_seconds",
                dimensions: [("verb", request.method.rawValue)],
                factory: self.requestCounterFactory
            ).recordNanoseconds(
                (ContinuousClock.now - start).nanoseconds
            )
            let result = KubeResponse(status: Int(response.status.code), headers: response.headers, body: body)
            if response.status.code >= 400 { throw Self.error(result) }
            return result
        } catch let error as KubeError {
            if error.code == .unauthorized { self.credentials.invalidate() }
            throw error
        } catch {
            self.count(request.method, "<error>")
            throw self.transportError(error, request)
        }
    }

    static func error(_ response: KubeResponse) -> KubeError {
        let status = try? KubeJSON.decode(Status.self, bytes: response.body.readableBytesView)
        var error = KubeError(httpStatus: response.status, status: status?.kind == "Status" ? status : nil)
        if error.status == nil {
            error.message = "HTTP \(response.status): \(String(buffer: response.body).prefix(200))"
        }
        if let retryAfter = response.headers["Retry-After"].first.flatMap(Int.init), error.status != nil {
            var details = error.status?.details ?? StatusDetails()
            details.retryAfterSeconds = retryAfter
            error.status?.details = details
        }
        return error
    }

    /// Opens a streamed response (a watch). Lines are read only as the consumer asks for them.
    public func stream(_ request: KubeRequest) async throws -> HTTPClientResponse.Body {
        try await self.limiter.acquire()
        let timeout = request.timeout ?? self.configuration.timeout
        do {
            let http = try await self.httpRequest(request)
            let response = try await self.watchHTTP.execute(
                http,
                timeout: TimeAmount(timeout),
                logger: self.logger
            )
            self.count(request.method, String(response.status.code))
            if response.status.code >= 400 {
                let body = try await response.body.collect(upTo: 1 << 20)
                throw Self.error(KubeResponse(status: Int(response.status.code), headers: response.headers, body: body))
            }
            return response.body
        } catch let error as KubeError {
            throw error
        } catch {
            self.count(request.method, "<error>")
            throw self.transportError(error, request)
        }
    }

    /// A typed client for one resource.
    public func resource<Object: KubeResource>(_ type: Object.Type, namespace: String? = nil) -> ResourceClient<Object>
    {
        ResourceClient(client: self, type: Object.resourceType, namespace: namespace)
    }

    /// A client for any resource type (custom resources).
    public func resource(_ type: ResourceType, namespace: String? = nil) -> ResourceClient<DynamicObject> {
        ResourceClient(client: self, type: type, namespace: namespace)
    }
}

extension KubeClient: ServiceLifecycle.Service {
    /// Keeps the client open until graceful shutdown or cancellation, then shuts its HTTP clients down. Put it
    /// first in a ServiceGroup so it shuts down after the services that use it.
    public func run() async throws {
        try? await gracefulShutdown()
        try await self.shutdown()
    }
}

/// Runs `body` with a client and shuts it down afterwards.
public func withKubeClient<Result: Sendable>(
    configuration: ClientConfiguration,
    logger: Logger,
    metricsFactory: any MetricsFactory = MetricsSystem.factory,
    _ body: (KubeClient) async throws -> Result
) async throws -> Result {
    let client = try KubeClient(configuration: configuration, logger: logger, metricsFactory: metricsFactory)
    do {
        let result = try await body(client)
        try await client.shutdown()
        return result
    } catch {
        try? await client.shutdown()
        throw error
    }
}
