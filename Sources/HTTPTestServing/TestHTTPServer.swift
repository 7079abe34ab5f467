// TestHTTPServer.swift: the HTTP/1.1 plumbing the in-process test doubles of Pyroscope and Grafana share:
// binding, the accept loop, keep-alive connections, request bodies with a size limit, and a clean stop.
// Each double only answers requests.

import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A request as received: head, the body (empty when over the limit) and its size on the wire.
public struct TestHTTPRequest: Sendable {
    public var head: HTTPRequestHead
    public var path: String
    public var query: [String: String]
    public var body: [UInt8]
    public var bodyBytes: Int
    public var bodyTooLarge: Bool

    public func header(_ name: String) -> String? { self.head.headers[name].first }
    public var method: HTTPMethod { self.head.method }
}

/// A response to write.
public struct TestHTTPResponse: Sendable {
    public var status: Int
    public var body: [UInt8]
    public var contentType: String
    public var headers: [(String, String)]

    public init(
        status: Int,
        body: [UInt8] = [],
        contentType: String = "text/plain; charset=utf-8",
        headers: [(String, String)] = []
    ) {
        self.status = status
        self.body = body
        self.contentType = contentType
        self.headers = headers
    }
}

/// Why the server could not do what it was asked.
public struct TestHTTPServerError: Error, Hashable, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { "TestHTTPServerError: \(self.message)" }
}

/// An HTTP/1.1 server on SwiftNIO that hands every request to a handler given at ``start(host:port:handler:)``.
public final class TestHTTPServer: Sendable {
    public typealias Handler = @Sendable (TestHTTPRequest) async throws -> TestHTTPResponse

    struct Serving: Sendable {
        var started = false
        var host = "127.0.0.1"
        var port = 0
        var task: Task<Void, Never>?
        var listener: (any Channel)?
    }

    typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>
    typealias ServerChannel = NIOAsyncChannel<Connection, Never>

    /// Accepted connections not yet taken by a handler. NIO traps when an accepted channel is dropped without
    /// being consumed, which happens to one accepted just as the listener closes (the accept stream is finished
    /// and drops it); keeping them here lets ``stop()`` close those properly.
    struct Connections: Sendable {
        var unclaimed: [ObjectIdentifier: Connection] = [:]
        var stopping = false
    }

    let name: String
    let logger: Logger
    let serving = Mutex(Serving())
    let connections = Mutex(Connections())

    public init(name: String, logger: Logger) {
        self.name = name
        self.logger = logger
    }

    /// Binds `host:port` (port 0 picks a free one) and serves in the background until ``stop()``. The handler is
    /// held only while serving, so it may capture the double that owns this server.
    /// - Parameter maxRequestBodyBytes: read per request; past it the body is drained, not kept.
    /// - Returns: The bound port.
    @discardableResult
    public func start(
        host: String = "127.0.0.1",
        port: Int = 0,
        maxRequestBodyBytes: @escaping @Sendable () -> Int = { 16 << 20 },
        handler: @escaping Handler
    ) async throws -> Int {
        // (A Bool, not a typed throw out of the lock: swift-frontend 6.3.1 crashes splitting this coroutine in -O.)
        let alreadyRunning = self.serving.withLock { serving in
            defer { serving.started = true }
            return serving.started
        }
        if alreadyRunning { throw TestHTTPServerError(message: "\(self.name) is already running") }
        self.connections.withLock { $0.stopping = false }
        let channel: ServerChannel
        do {
            channel = try await self.bind(host: host, port: port)
        } catch {
            self.serving.withLock { $0.started = false }
            throw error
        }
        let boundPort = channel.channel.localAddress?.port ?? 0
        let task = Task { await self.serve(channel, limit: maxRequestBodyBytes, handler: handler) }
        self.serving.withLock {
            $0.host = host
            $0.port = boundPort
            $0.task = task
            $0.listener = channel.channel
        }
        self.logger.info("\(self.name) listening", metadata: ["server.port": "\(boundPort)"])
        return boundPort
    }

    /// Closes the listening socket and every connection, and waits for them to finish.
    public func stop() async {
        let (task, listener) = self.serving.withLock { serving -> (Task<Void, Never>?, (any Channel)?) in
            defer {
                serving.task = nil
                serving.listener = nil
                serving.started = false
            }
            return (serving.task, serving.listener)
        }
        self.connections.withLock { $0.stopping = true }
        try? await listener?.close()
        await task?.value
        // Connections accepted while the listener closed, which the accept loop never saw.
        let leftovers = self.connections.withLock { connections in
            defer { connections.unclaimed = [:] }
            return Array(connections.unclaimed.values)
        }
        for connection in leftovers { await Self.close(connection) }
    }

    /// The bound port (0 before ``start(host:port:handler:)``).
    public var port: Int { self.serving.withLock { $0.port } }

    /// `http://HOST:PORT`.
    public var url: String { self.serving.withLock { "http://\($0.host):\($0.port)" } }

    /// Takes an accepted connection for handling; false when someone else took it.
    func claim(_ connection: Connection) -> Bool {
        self.connections.withLock { $0.unclaimed.removeValue(forKey: ObjectIdentifier(connection.channel)) != nil }
    }

    static func close(_ connection: Connection) async {
        try? await connection.executeThenClose { _, _ in }
    }

    func bind(host: String, port: Int) async throws -> ServerChannel {
        try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    let connection = try Connection(wrappingChannelSynchronously: channel)
                    let stopping = self.connections.withLock { connections in
                        connections.unclaimed[ObjectIdentifier(channel)] = connection
                        return connections.stopping
                    }
                    if stopping {
                        // Accepted after stop() began: the accept loop may be gone, so close it here.
                        Task {
                            if self.claim(connection) { await Self.close(connection) }
                        }
                    }
                    return connection
                }
            }
    }

    func serve(_ channel: ServerChannel, limit: @escaping @Sendable () -> Int, handler: @escaping Handler) async {
        do {
            try await withThrowingDiscardingTaskGroup { group in
                try await channel.executeThenClose { inbound in
                    for try await connection in inbound where self.claim(connection) {
                        group.addTask { await self.handle(connection, limit: limit, handler: handler) }
                    }
                }
                // The listener is closed: end the open (keep-alive) connections too.
                group.cancelAll()
            }
        } catch {
            self.logger.debug("server channel ended", metadata: ["error": "\(error)"])
        }
    }

    func handle(_ connection: Connection, limit maxRequestBodyBytes: () -> Int, handler: Handler) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                var body = ByteBuffer()
                var received = 0
                var tooLarge = false
                var limit = 0
                for try await part in inbound {
                    switch part {
                    case .head(let requestHead):
                        head = requestHead
                        body.clear()
                        received = 0
                        tooLarge = false
                        limit = maxRequestBodyBytes()
                        // curl asks before sending bodies over 1 MiB, then waits a second for an answer.
                        if requestHead.headers["Expect"].contains(where: { $0.lowercased() == "100-continue" }) {
                            try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: .continue)))
                        }
                    case .body(var chunk):
                        // Past the limit the rest is drained, not kept, so the client still reads the answer.
                        received += chunk.readableBytes
                        if received > limit {
                            tooLarge = true
                            body = ByteBuffer()
                        } else {
                            body.writeBuffer(&chunk)
                        }
                    case .end:
                        guard let requestHead = head else { continue }
                        head = nil
                        let (path, query) = Self.parseURI(requestHead.uri)
                        let request = TestHTTPRequest(
                            head: requestHead,
                            path: path,
                            query: query,
                            body: Array(buffer: body),
                            bodyBytes: received,
                            bodyTooLarge: tooLarge
                        )
                        body = ByteBuffer()
                        try await Self.write(try await handler(request), to: outbound)
                    }
                }
            }
        } catch {
            self.logger.debug("connection ended", metadata: ["error": "\(error)"])
        }
    }

    /// Splits a request target into its path and query parameters (first value wins), decoding as Go's
    /// url.ParseQuery does (`+` is a space). Lenient like Go: unescaped `{}` in `name=app{k=v}` are fine.
    public static func parseURI(_ uri: String) -> (path: String, query: [String: String]) {
        let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let path = String(parts[0])
        var query: [String: String] = [:]
        guard parts.count > 1 else { return (path, query) }
        func decode(_ component: Substring) -> String {
            let spaced = component.replacingOccurrences(of: "+", with: " ")
            return spaced.removingPercentEncoding ?? spaced
        }
        for pair in parts[1].split(separator: "&") {
            let keyValue = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = decode(keyValue[0])
            if query[key] == nil { query[key] = keyValue.count > 1 ? decode(keyValue[1]) : "" }
        }
        return (path, query)
    }

    static func write(
        _ response: TestHTTPResponse,
        to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>
    )
        async throws
    {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: String(response.body.count))
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        let head = HTTPResponseHead(version: .http1_1, status: .init(statusCode: response.status), headers: headers)
        try await outbound.write(
            contentsOf: [.head(head), .body(.byteBuffer(ByteBuffer(bytes: response.body))), .end(nil)]
        )
    }
}
