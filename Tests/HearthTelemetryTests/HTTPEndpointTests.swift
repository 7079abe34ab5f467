// HTTPEndpointTests.swift: the listen-address syntax both commands accept, and the limits that keep a silent, slow
// or numerous client from holding the endpoint, over real sockets on 127.0.0.1.

import Glibc
import HearthTelemetry
import Logging
import Synchronization
import Testing

@Suite("HTTPEndpoint addresses")
struct HTTPEndpointAddressTests {
    @Test("HOST:PORT and :PORT parse; anything else is refused")
    func addresses() {
        #expect(HTTPEndpoint.address("127.0.0.1:4041")! == ("127.0.0.1", 4041))
        #expect(HTTPEndpoint.address(":4041")! == ("0.0.0.0", 4041))
        #expect(HTTPEndpoint.address("[::1]:80")! == ("[::1]", 80))
        #expect(HTTPEndpoint.address("0.0.0.0:0")! == ("0.0.0.0", 0))
        for bad in ["4041", "host:", "host:http", ":70000", ":-1", ""] {
            #expect(HTTPEndpoint.address(bad) == nil, "\(bad)")
        }
    }
}

// Timings are upper bounds on when the server must have acted, with this much slack for a loaded machine.
private let slack = Duration.seconds(2)

@Suite("HTTPEndpoint limits", .timeLimit(.minutes(1)))
struct HTTPEndpointLimitTests {
    @Test("GET answers the route's response; HEAD its headers only; a query is not part of the path")
    func get() async throws {
        try await withEndpoint { port in
            let response = try await exchange(port, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            #expect(response.status == "HTTP/1.1 200 OK")
            #expect(response.head.contains("Content-Length: 6"))
            #expect(response.body == "hello\n")
            let query = try await exchange(port, "GET /metrics?debug=1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
            #expect(query.status == "HTTP/1.1 200 OK")
            let head = try await exchange(port, "HEAD /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            #expect(head.status == "HTTP/1.1 200 OK")
            #expect(head.head.contains("Content-Length: 6"))
            #expect(head.body == "")
            let missing = try await exchange(port, "GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n")
            #expect(missing.status == "HTTP/1.1 404 Not Found")
        }
    }

    @Test("methods other than GET and HEAD are answered 405 with Allow")
    func methods() async throws {
        try await withEndpoint { port in
            for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
                let response = try await exchange(
                    port,
                    "\(method) /metrics HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}"
                )
                #expect(response.status == "HTTP/1.1 405 Method Not Allowed", "\(method)")
                #expect(response.head.contains("Allow: GET, HEAD"), "\(method)")
            }
        }
    }

    @Test("a connection that sends nothing is closed at the read timeout")
    func silent() async throws {
        let registry = PrometheusRegistry()
        try await withEndpoint(limits: .init(readTimeout: .milliseconds(300)), metrics: registry) { port in
            let start = ContinuousClock.now
            let client = try Client(port: port)
            let received = try await client.readUntilClosed(within: .milliseconds(300) + slack)
            let elapsed = start.duration(to: .now)
            #expect(received == [], "closed without a response")
            // Not closed early for some other reason.
            #expect(elapsed >= .milliseconds(250), "\(elapsed)")
            #expect(registry.render().contains(rejected("read_timeout", 1)))
        }
    }

    @Test("a client that drips its request head a byte at a time is closed at the read deadline all the same")
    func drip() async throws {
        let registry = PrometheusRegistry()
        try await withEndpoint(limits: .init(readTimeout: .milliseconds(300)), metrics: registry) { port in
            // A byte every 50 ms, far inside the 300 ms: only a deadline on the whole request closes it. The
            // head takes over 10 s to send, so a server that waited for it would answer it.
            let head =
                "GET /metrics HTTP/1.1\r\nHost: localhost\r\nUser-Agent: drip\r\n"
                + "X-Padding: \(String(repeating: "p", count: 160))\r\n\r\n"
            let start = ContinuousClock.now
            let client = try Client(port: port)
            var received: [UInt8] = []
            var closed = false
            for byte in head.utf8 {
                let read = client.drain()
                received += read.received
                if read.closed {
                    closed = true
                    break
                }
                guard try await client.send([byte]) else {
                    closed = true
                    break
                }
                try #require(start.duration(to: .now) < .milliseconds(300) + slack, "still open")
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(closed)
            #expect(received == [], "closed without a response")
            #expect(registry.render().contains(rejected("read_timeout", 1)))
        }
    }

    @Test("a connection that is idle past the idle timeout is closed, before a longer read timeout")
    func idle() async throws {
        let registry = PrometheusRegistry()
        let limits = HTTPEndpoint.Limits(readTimeout: .seconds(30), idleTimeout: .milliseconds(300))
        try await withEndpoint(limits: limits, metrics: registry) { port in
            let client = try Client(port: port)
            #expect(try await client.readUntilClosed(within: .milliseconds(300) + slack) == [])
            #expect(registry.render().contains(rejected("idle_timeout", 1)))
        }
    }

    @Test("connections over maxConnections are answered 503 at once; the cap frees up as connections close")
    func connectionCap() async throws {
        let registry = PrometheusRegistry()
        try await withEndpoint(limits: .init(maxConnections: 4), metrics: registry) { port in
            // The default 10 s read timeout holds the four well past this test's bounds.
            let held = try (0..<4).map { _ in try Client(port: port) }
            let fifth = try Client(port: port)
            let refused = try #require(
                try await fifth.readUntilClosed(within: slack),
                "the fifth connection is still open"
            )
            let text = String(decoding: refused, as: UTF8.self)
            // Answered, or reset if the client's bytes raced the close.
            #expect(text.isEmpty || text.hasPrefix("HTTP/1.1 503 Service Unavailable\r\n"), "\(text)")
            #expect(registry.render().contains(rejected("limit", 1)))
            // The four were admitted before the fifth (in accept order): open, and answered nothing.
            for client in held {
                let read = client.drain()
                #expect(!read.closed && read.received.isEmpty)
            }
            for client in held { client.close() }
            // Admitted again once the server has seen them close.
            let deadline = ContinuousClock.now + slack
            var response = try await exchange(port, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            while response.status != "HTTP/1.1 200 OK" && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
                response = try await exchange(port, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
            }
            #expect(response.status == "HTTP/1.1 200 OK")
            #expect(response.body == "hello\n")
        }
    }

    @Test("a request head over maxHeadBytes is refused; one under it is answered")
    func largeHead() async throws {
        let registry = PrometheusRegistry()
        try await withEndpoint(metrics: registry) { port in
            let fits = try await exchange(
                port,
                "GET /metrics HTTP/1.1\r\nHost: localhost\r\nX-Padding: \(String(repeating: "p", count: 8 * 1024))\r\n\r\n"
            )
            #expect(fits.status == "HTTP/1.1 200 OK")
            let tooLarge = try await exchange(
                port,
                "GET /metrics HTTP/1.1\r\nHost: localhost\r\nX-Padding: \(String(repeating: "p", count: 20 * 1024))\r\n\r\n"
            )
            // 400, or reset with the rest of the head unread.
            #expect(tooLarge.status == "HTTP/1.1 400 Bad Request" || tooLarge.status == "", "\(tooLarge.status)")
            #expect(registry.render().contains(rejected("too_large", 1)))
        }
    }

    @Test("a request body over maxBodyBytes is refused, declared or chunked; a small one is read and ignored")
    func largeBody() async throws {
        let registry = PrometheusRegistry()
        try await withEndpoint(metrics: registry) { port in
            let small = try await exchange(
                port,
                "GET /metrics HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n"
                    + String(repeating: "b", count: 100)
            )
            #expect(small.status == "HTTP/1.1 200 OK")
            let declared = try await exchange(
                port,
                "GET /metrics HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n"
                    + String(repeating: "b", count: 100_000)
            )
            // 413, or reset with the rest of the body unread.
            #expect(declared.status == "HTTP/1.1 413 Payload Too Large" || declared.status == "")
            let chunk = "4000\r\n" + String(repeating: "c", count: 0x4000) + "\r\n"
            let chunked = try await exchange(
                port,
                "GET /metrics HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + String(repeating: chunk, count: 5) + "0\r\n\r\n"
            )
            #expect(chunked.status == "HTTP/1.1 413 Payload Too Large" || chunked.status == "")
            #expect(registry.render().contains(rejected("too_large", 2)))
        }
    }
}

/// The series of connections closed by a limit, as rendered.
private func rejected(_ reason: String, _ count: Int) -> String {
    #"hearth_http_connections_rejected_total{endpoint="test",reason="\#(reason)"} \#(count)"#
}

/// Runs an endpoint on a free port of 127.0.0.1 serving `hello` at /metrics, passes the port to `body`, then cancels
/// the endpoint and waits for it to stop.
private func withEndpoint(
    limits: HTTPEndpoint.Limits = .init(),
    metrics: PrometheusRegistry = PrometheusRegistry(),
    _ body: (Int) async throws -> Void
) async throws {
    let listening = ListeningPort()
    let endpoint = HTTPEndpoint(
        name: "test",
        host: "127.0.0.1",
        port: 0,
        logger: Logger(label: "test") { _ in listening },
        limits: limits,
        metricsFactory: metrics
    ) { path in
        path == "/metrics" ? .init(status: 200, body: "hello\n") : .init(status: 404, body: "not found\n")
    }
    let server = Task { try await endpoint.run() }
    do {
        let deadline = ContinuousClock.now + .seconds(10)
        while listening.port == nil && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        try await body(try #require(listening.port, "the endpoint did not log its port"))
    } catch {
        server.cancel()
        _ = await server.result
        throw error
    }
    server.cancel()
    try await server.value
}

/// A response read to the server's close: `status` is empty when the connection was closed without one.
private struct Exchange {
    var status: String
    var head: String
    var body: String
}

/// Sends `request` on a new connection and reads until the server closes it (every response closes it).
private func exchange(_ port: Int, _ request: String) async throws -> Exchange {
    let client = try Client(port: port)
    _ = try await client.send(Array(request.utf8))
    let received = try #require(
        try await client.readUntilClosed(within: slack),
        "the server did not close the connection"
    )
    let text = String(decoding: received, as: UTF8.self)
    let parts = text.split(separator: "\r\n\r\n", maxSplits: 1, omittingEmptySubsequences: false)
    let head = parts.first.map(String.init) ?? ""
    return Exchange(
        status: head.split(separator: "\r\n", maxSplits: 1).first.map(String.init) ?? "",
        head: head,
        body: parts.count > 1 ? String(parts[1]) : ""
    )
}

/// The port of the endpoint's "listening" log line.
private final class ListeningPort: LogHandler, Sendable {
    private let storage = Mutex<Int?>(nil)
    var port: Int? { self.storage.withLock { $0 } }

    func log(event: LogEvent) {
        guard event.message.description == "listening", case .string(let address)? = event.metadata?["http.address"],
            let port = address.split(separator: ":").last.flatMap({ Int($0) })
        else { return }
        self.storage.withLock { $0 = port }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { nil }
        set {}
    }
    var metadata: Logger.Metadata {
        get { [:] }
        set {}
    }
    var logLevel: Logger.Level {
        get { .info }
        set {}
    }
}

/// A TCP connection to 127.0.0.1, non-blocking once connected: waits poll and suspend rather than block a thread
/// the endpoint's own tasks may need.
private final class Client {
    private var fd: Int32

    init(port: Int) throws {
        self.fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(self.fd >= 0, "socket: errno \(errno)")
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(self.fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        try #require(connected == 0, "connect: errno \(errno)")
        _ = fcntl(self.fd, F_SETFL, fcntl(self.fd, F_GETFL) | O_NONBLOCK)
    }

    deinit { self.close() }

    func close() {
        guard self.fd >= 0 else { return }
        _ = Glibc.close(self.fd)
        self.fd = -1
    }

    /// Sends every byte; false once the server has closed or reset the connection.
    func send(_ bytes: [UInt8]) async throws -> Bool {
        var sent = 0
        let deadline = ContinuousClock.now + slack
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes {
                Glibc.send(self.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if count >= 0 {
                sent += count
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                try #require(ContinuousClock.now < deadline, "the server stopped reading")
                try await Task.sleep(for: .milliseconds(5))
            } else {
                return false
            }
        }
        return true
    }

    /// What has arrived, without waiting; `closed` once the server closed or reset the connection.
    func drain() -> (received: [UInt8], closed: Bool) {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(self.fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                received += buffer[..<count]
            } else if count == 0 {
                return (received, true)
            } else {
                return (received, !(errno == EAGAIN || errno == EWOULDBLOCK))
            }
        }
    }

    /// Everything received until the server closed the connection; nil if it is still open after `limit`.
    func readUntilClosed(within limit: Duration) async throws -> [UInt8]? {
        let deadline = ContinuousClock.now + limit
        var received: [UInt8] = []
        while true {
            let read = self.drain()
            received += read.received
            if read.closed { return received }
            if ContinuousClock.now >= deadline { return nil }
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}
