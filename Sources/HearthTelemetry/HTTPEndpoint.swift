// HTTPEndpoint.swift: a tiny HTTP/1.1 server as a Service, for /metrics (:8080) and /healthz, /readyz (:8081).

import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// Serves GET requests from a routing closure until cancelled or shut down gracefully.
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

    let name: String
    let host: String
    let port: Int
    let logger: Logger
    let route: @Sendable (String) -> Response

    /// - Parameters:
    ///   - name: what the endpoint serves (`metrics`, `health`), logged with the bound address.
    ///   - port: 0 binds a free port; the "listening" log line names it.
    ///   - route: maps a path (without query) to a response.
    public init(
        name: String,
        host: String,
        port: Int,
        logger: Logger,
        route: @escaping @Sendable (String) -> Response
    ) {
        self.name = name
        self.host = host
        self.port = port
        self.logger = logger
        self.route = route
    }

    public func run() async throws {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: self.host, port: self.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
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
            var path = "/"
            for try await part in inbound {
                switch part {
                case .head(let head):
                    path = String(head.uri.split(separator: "?", maxSplits: 1).first ?? "/")
                case .body:
                    continue
                case .end:
                    let response = self.route(path)
                    var headers = HTTPHeaders()
                    headers.add(name: "Content-Type", value: response.contentType)
                    headers.add(name: "Content-Length", value: String(response.body.utf8.count))
                    headers.add(name: "Connection", value: "close")
                    try await outbound.write(
                        .head(
                            HTTPResponseHead(
                                version: .http1_1,
                                status: .init(statusCode: response.status),
                                headers: headers
                            )
                        )
                    )
                    try await outbound.write(.body(.byteBuffer(ByteBuffer(string: response.body))))
                    try await outbound.write(.end(nil))
                    return
                }
            }
        }
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
