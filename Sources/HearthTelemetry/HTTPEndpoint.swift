// HTTPEndpoint.swift: a tiny HTTP/1.1 server as a Service, for /metrics (:8080) and /healthz, /readyz (:8081).
// Anything that reaches the port can connect (on the agent, every pod on the node), so each connection has a
// deadline for its request and the number of connections a cap: a silent or slow client cannot hold the endpoint.

import CoreMetrics
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// Serves GET and HEAD requests from a routing closure until cancelled or shut down gracefully, within ``Limits``.
public struct HTTPEndpoint: Service {
    /// A response: status code, content type and body.
    public struct Response: Sendable {
        public var status: Int
        public var contentType: String
        public var body: String
        public init(status: Int, contentType: String = "text/plain; charset=utf-8", body: String) {
            self.status = status
            self.contentType = contentType
            self.body = body
        }
    }

    /// What one client may take of the endpoint. Every connection serves one request and is closed.
    ///
    /// Connections closed by a limit are counted in `hearth_http_connections_rejected_total`, by `endpoint` and
    /// `reason`: `limit`, `read_timeout`, `idle_timeout`, `too_large`.
    public struct Limits: Sendable, Hashable {
        /// Time from accepting a connection to a complete request (head and body). A connection without one by then
        /// is closed, however steadily it sends bytes. Default 10 s.
        public var readTimeout: Duration
        /// A connection that neither reads nor writes for this long is closed: a client that stops reading its
        /// response. Default 30 s.
        public var idleTimeout: Duration
        /// Connections open at once (at least 1). One beyond them is answered 503 and closed at once; the next is
        /// admitted as soon as an open one closes. Default 64.
        public var maxConnections: Int
        /// Largest request body: a larger one is answered 413 and the connection closed. Default 64 KiB.
        public var maxBodyBytes: Int
        /// Largest request head, the request line and header fields: a larger one is answered 400 and the
        /// connection closed. Default 16 KiB.
        public var maxHeadBytes: Int

        public init(
            readTimeout: Duration = .seconds(10),
            idleTimeout: Duration = .seconds(30),
            maxConnections: Int = 64,
            maxBodyBytes: Int = 64 * 1024,
            maxHeadBytes: Int = 16 * 1024
        ) {
            self.readTimeout = readTimeout
            self.idleTimeout = idleTimeout
            self.maxConnections = maxConnections
            self.maxBodyBytes = maxBodyBytes
            self.maxHeadBytes = maxHeadBytes
        }
    }

    let name: String
    let host: String
    let port: Int
    let limits: Limits
    let logger: Logger
    let route: @Sendable (String) -> Response
    let rejections: Rejections

    /// - Parameters:
    ///   - name: what the endpoint serves (`metrics`, `health`), logged with the bound address.
    ///   - port: 0 binds a free port; the "listening" log line names it.
    ///   - limits: timeouts, connection cap and request sizes; the defaults suit a metrics or health port.
    ///   - metricsFactory: where connections closed by a limit are counted.
    ///   - route: maps a path (without query) to a response.
    public init(
        name: String,
        host: String,
        port: Int,
        logger: Logger,
        limits: Limits = Limits(),
        metricsFactory: any MetricsFactory = MetricsSystem.factory,
        route: @escaping @Sendable (String) -> Response
    ) {
        self.name = name
        self.host = host
        self.port = port
        self.limits = limits
        self.logger = logger
        self.route = route
        self.rejections = Rejections(endpoint: name, factory: metricsFactory)
    }

    public func run() async throws {
        let limits = self.limits
        let rejections = self.rejections
        let gate = ConnectionGate(limit: limits.maxConnections)
        let logger = self.logger
        let name = self.name
        let decoderLimits = {
            var decoder = NIOHTTPDecoderLimitConfiguration()
            decoder.maxHeaderFieldSize = limits.maxHeadBytes
            decoder.maxHeaderListSize = limits.maxHeadBytes
            return decoder
        }()
        // One event loop: the endpoint is small, and its connections are admitted in the order they were accepted.
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton.next())
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: self.host, port: self.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    () -> NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>? in
                    let admission = gate.admit()
                    guard admission.admitted else {
                        rejections.limit.increment()
                        if admission.firstRefusal {
                            logger.warning(
                                "connection limit reached, refusing connections",
                                metadata: [
                                    "http.endpoint": "\(name)", "http.max_connections": "\(limits.maxConnections)",
                                ]
                            )
                        }
                        try channel.pipeline.syncOperations.addHandler(RefuseConnection())
                        return nil
                    }
                    channel.closeFuture.whenComplete { _ in gate.release() }
                    try channel.pipeline.syncOperations.addHandler(
                        IdleStateHandler(allTimeout: TimeAmount(limits.idleTimeout))
                    )
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withErrorHandling: true,
                        withEncoderConfiguration: .init(),
                        withDecoderLimitConfiguration: decoderLimits
                    )
                    try channel.pipeline.syncOperations.addHandler(
                        ConnectionDeadlines(readTimeout: TimeAmount(limits.readTimeout), rejections: rejections)
                    )
                    return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(
                        wrappingChannelSynchronously: channel
                    )
                }
            }
        self.logger.info(
            "listening",
            metadata: [
                "http.endpoint": "\(self.name)",
                "http.address": "\(self.host):\(channel.channel.localAddress?.port ?? 0)",
            ]
        )
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                try await channel.executeThenClose { inbound in
                    for try await connection in inbound.cancelOnGracefulShutdown() {
                        // nil: refused over the limit, answered and closed by its pipeline.
                        guard let connection else { continue }
                        group.addTask { await self.handle(connection) }
                    }
                }
            }
        } onGracefulShutdown: {
            channel.channel.close(promise: nil)
        }
    }

    func handle(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async {
        try? await connection.executeThenClose { inbound, outbound in
            var request: HTTPRequestHead?
            var bodyBytes = 0
            for try await part in inbound {
                switch part {
                case .head(let head):
                    request = head
                    // A declared body over the limit is refused before it is read.
                    if let length = head.headers.first(name: "Content-Length").flatMap({ Int($0) }),
                        length > self.limits.maxBodyBytes
                    {
                        self.rejections.tooLarge.increment()
                        try await Self.write(.init(status: 413, body: "request body too large\n"), to: outbound)
                        return
                    }
                case .body(let chunk):
                    // Chunked bodies declare no length: count them.
                    bodyBytes += chunk.readableBytes
                    if bodyBytes > self.limits.maxBodyBytes {
                        self.rejections.tooLarge.increment()
                        try await Self.write(.init(status: 413, body: "request body too large\n"), to: outbound)
                        return
                    }
                case .end:
                    guard let request else { return }
                    switch request.method {
                    case .GET, .HEAD:
                        let path = String(request.uri.split(separator: "?", maxSplits: 1).first ?? "/")
                        try await Self.write(self.route(path), withBody: request.method == .GET, to: outbound)
                    default:
                        try await Self.write(
                            .init(status: 405, body: "method not allowed\n"),
                            extraHeaders: [("Allow", "GET, HEAD")],
                            to: outbound
                        )
                    }
                    return
                }
            }
        }
    }

    /// Writes a whole response; the caller closes the connection after it.
    static func write(
        _ response: Response,
        withBody: Bool = true,
        extraHeaders: [(String, String)] = [],
        to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>
    ) async throws {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: String(response.body.utf8.count))
        headers.add(name: "Connection", value: "close")
        headers.add(contentsOf: extraHeaders)
        try await outbound.write(
            .head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: response.status), headers: headers))
        )
        // HEAD: the length of the body a GET would get, not the body.
        if withBody {
            try await outbound.write(.body(.byteBuffer(ByteBuffer(string: response.body))))
        }
        try await outbound.write(.end(nil))
    }
}

extension HTTPEndpoint {
    /// Parses `HOST:PORT`, or `:PORT` for every address; nil when it is neither.
    public static func address(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        let host = String(text[..<colon])
        return (host.isEmpty ? "0.0.0.0" : host, port)
    }
}

/// `hearth_http_connections_rejected_total`, one counter per reason.
struct Rejections: Sendable {
    let limit: Counter
    let readTimeout: Counter
    let idleTimeout: Counter
    let tooLarge: Counter

    init(endpoint: String, factory: any MetricsFactory) {
        func counter(_ reason: String) -> Counter {
            Counter(
                label: "hearth_http_connections_rejected_total",
                dimensions: [("endpoint", endpoint), ("reason", reason)],
                factory: factory
            )
        }
        self.limit = counter("limit")
        self.readTimeout = counter("read_timeout")
        self.idleTimeout = counter("idle_timeout")
        self.tooLarge = counter("too_large")
    }
}

/// Counts open connections against `Limits.maxConnections`.
final class ConnectionGate: Sendable {
    private struct State {
        var open = 0
        var refusing = false
    }
    private let state = Mutex(State())
    private let limit: Int

    init(limit: Int) { self.limit = limit }

    /// Admits a connection under the limit. `firstRefusal` is set once per stretch at the limit, so a flood of
    /// refused connections logs one line, not one each.
    func admit() -> (admitted: Bool, firstRefusal: Bool) {
        self.state.withLock { state in
            guard state.open < self.limit else {
                let first = !state.refusing
                state.refusing = true
                return (false, first)
            }
            state.open += 1
            state.refusing = false
            return (true, false)
        }
    }

    /// An admitted connection closed.
    func release() {
        self.state.withLock { $0.open -= 1 }
    }
}

/// Closes a connection without a complete request `readTimeout` after it was accepted (a timer between reads would
/// let a client that sends a byte a second hold it forever), and one that `IdleStateHandler` reports idle.
final class ConnectionDeadlines: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    private let readTimeout: TimeAmount
    private let rejections: Rejections
    private var readDeadline: Scheduled<Void>?

    init(readTimeout: TimeAmount, rejections: Rejections) {
        self.readTimeout = readTimeout
        self.rejections = rejections
    }

    // Added before the channel is registered: the deadline counts from the accept.
    func handlerAdded(context: ChannelHandlerContext) {
        self.readDeadline = context.eventLoop.assumeIsolated().scheduleTask(in: self.readTimeout) {
            self.rejections.readTimeout.increment()
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.readDeadline?.cancel()
        self.readDeadline = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .end = Self.unwrapInboundIn(data) {
            self.readDeadline?.cancel()
            self.readDeadline = nil
        }
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.readDeadline?.cancel()
        self.readDeadline = nil
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is IdleStateHandler.IdleStateEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        self.rejections.idleTimeout.increment()
        context.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // HTTPServerProtocolErrorHandler has answered 400; the decoder closes the connection.
        if case .headerOverflow? = error as? HTTPParserError {
            self.rejections.tooLarge.increment()
        }
        context.fireErrorCaught(error)
    }
}

@available(*, unavailable)
extension ConnectionDeadlines: Sendable {}

/// Answers a connection over the limit 503 and closes it, reading nothing.
final class RefuseConnection: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private static let response: String = {
        let body = "too many connections\n"
        return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
            + "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
    }()

    func channelActive(context: ChannelHandlerContext) {
        context.writeAndFlush(Self.wrapOutboundOut(ByteBuffer(string: Self.response)))
            .assumeIsolated()
            .whenComplete { _ in context.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}

@available(*, unavailable)
extension RefuseConnection: Sendable {}
