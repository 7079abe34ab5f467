// PyroscopeTestServer.swift: the public face of the Pyroscope ingestion double: lifecycle, knobs, fault hooks,
// and what tests read (accepted series, request log, counters, waits).

import Foundation
import HTTPTestServing
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// An in-process test double of Grafana Pyroscope's ingestion API.
///
/// It serves `POST /push.v1.PusherService/Push` (connect, `application/proto`), the legacy `POST /ingest`
/// (pprof only) and `GET /ready` over plain HTTP/1.1, and applies the server's documented validation to every
/// profile, answering with the statuses and connect error bodies Pyroscope sends. Profiles are decoded with the
/// server's own protobuf reader, independent of the agent's generated code.
///
/// Every knob may change while the server runs. Check order on the ingestion routes: response delay, ``isDown``
/// (503), ``failNext(count:status:connectCode:)``, authentication (401), body size (413), then the request
/// itself. A rejected push stores nothing: Pyroscope validates every profile of a request before accepting any.
public final class PyroscopeTestServer: ScopedTestServer {
    struct Failure: Sendable {
        var remaining: Int
        var status: Int
        var code: ConnectCode
    }

    struct Waiter: Sendable {
        var condition: @Sendable ([ReceivedSeries], [RequestRecord]) -> Bool
        var continuation: CheckedContinuation<Void, any Error>
    }

    struct State: Sendable {
        var authentication = Authentication.none
        var pushAPIEnabled = true
        var down = false
        var delay: Duration?
        var failures: [Failure] = []
        var limits = IngestionLimits()
        var maxRetainedSeries: Int?

        var series: [ReceivedSeries] = []
        var requests: [RequestRecord] = []
        var statusCounts: [Int: Int] = [:]
        var seriesTotal = 0
        var samplesTotal = 0
        var valueTotal: Int64 = 0
        var bodyBytesTotal = 0

        var waiters: [Int: Waiter] = [:]
        var nextWaiterID = 0

        /// Removes the waiters whose condition now holds, for resuming outside the lock.
        mutating func satisfiedWaiters() -> [Waiter] {
            var satisfied: [Waiter] = []
            for (id, waiter) in self.waiters where waiter.condition(self.series, self.requests) {
                satisfied.append(waiter)
                self.waiters[id] = nil
            }
            return satisfied
        }
    }

    let logger: Logger
    let state = Mutex(State())
    let http: TestHTTPServer

    public init(logger: Logger = Logger(label: "pyroscope-test-server")) {
        self.logger = logger
        self.http = TestHTTPServer(name: "pyroscope-test-server", logger: logger)
    }

    // MARK: Lifecycle

    /// Binds `host:port` (port 0 picks a free one) and serves in the background until ``stop()``.
    /// - Returns: The bound port.
    @discardableResult
    public func start(host: String = "127.0.0.1", port: Int = 0) async throws -> Int {
        do {
            return try await self.http.start(
                host: host,
                port: port,
                maxRequestBodyBytes: { self.state.withLock { $0.limits.maxRequestBodyBytes } },
                handler: { request in
                    let response = try await self.respond(request)
                    return TestHTTPResponse(
                        status: response.status,
                        body: response.body,
                        contentType: response.contentType,
                        headers: response.headers
                    )
                }
            )
        } catch let error as TestHTTPServerError {
            throw PyroscopeTestServerError(code: .alreadyStarted, message: error.message)
        }
    }

    /// Closes the listening socket and every connection, and waits for them to finish. The recorded data stays.
    public func stop() async { await self.http.stop() }

    /// Runs a server on a free port for the duration of `body`, then stops it.
    public static func withRunning<Result: Sendable>(
        logger: Logger = Logger(label: "pyroscope-test-server"),
        _ body: (PyroscopeTestServer) async throws -> Result
    ) async throws -> Result {
        try await PyroscopeTestServer(logger: logger).whileRunning(body)
    }

    public func startOnFreePort() async throws { try await self.start() }

    /// The bound port (0 before ``start(host:port:)``).
    public var port: Int { self.http.port }

    /// `http://HOST:PORT`.
    public var url: String { self.http.url }

    // MARK: Knobs

    /// Credentials required on the ingestion routes (default none).
    public var authentication: Authentication {
        get { self.state.withLock { $0.authentication } }
        set { self.state.withLock { $0.authentication = newValue } }
    }

    /// When false the push route answers 404, as a server predating the push API (default true).
    public var pushAPIEnabled: Bool {
        get { self.state.withLock { $0.pushAPIEnabled } }
        set { self.state.withLock { $0.pushAPIEnabled = newValue } }
    }

    /// When true every ingestion request gets 503 (`unavailable` on the push route) and `/ready` gets 503, as
    /// behind a load balancer with no healthy distributor. The connection stays open (no resets).
    public var isDown: Bool {
        get { self.state.withLock { $0.down } }
        set { self.state.withLock { $0.down = newValue } }
    }

    /// A delay before every ingestion request is answered (nil for none).
    public var responseDelay: Duration? {
        get { self.state.withLock { $0.delay } }
        set { self.state.withLock { $0.delay = newValue } }
    }

    /// The validation limits (Pyroscope's defaults unless changed).
    public var limits: IngestionLimits {
        get { self.state.withLock { $0.limits } }
        set { self.state.withLock { $0.limits = newValue } }
    }

    /// Keeps only the newest this many accepted series (nil keeps all); totals count them all.
    public var maxRetainedSeries: Int? {
        get { self.state.withLock { $0.maxRetainedSeries } }
        set { self.state.withLock { $0.maxRetainedSeries = newValue } }
    }

    /// Answers the next `count` push or ingest requests with `status` (429 adds `Retry-After: 1`). On the push
    /// route the body is a connect error with `connectCode`, by default the code of `status`. Calls queue up.
    public func failNext(count: Int, status: Int, connectCode: ConnectCode? = nil) {
        guard count > 0 else { return }
        let code = connectCode ?? ConnectCode.forHTTPStatus(status)
        self.state.withLock { $0.failures.append(Failure(remaining: count, status: status, code: code)) }
    }

    /// Forgets accepted series, the request log, counters and pending faults (`failNext`, down, delay).
    /// Authentication, ``pushAPIEnabled``, limits and retention stay.
    public func reset() {
        self.state.withLock { state in
            state.series = []
            state.requests = []
            state.statusCounts = [:]
            state.seriesTotal = 0
            state.samplesTotal = 0
            state.valueTotal = 0
            state.bodyBytesTotal = 0
            state.failures = []
            state.down = false
            state.delay = nil
        }
    }

    // MARK: What tests read

    /// Every accepted series (one per raw profile), oldest first.
    public var receivedSeries: [ReceivedSeries] { self.state.withLock { $0.series } }

    /// Every answered request, oldest first.
    public var requestLog: [RequestRecord] { self.state.withLock { $0.requests } }

    /// Answered requests by HTTP status.
    public var requestCountsByStatus: [Int: Int] { self.state.withLock { $0.statusCounts } }

    /// Totals for reports and the benchmark.
    public func summary() -> ServerSummary {
        self.state.withLock { state in
            ServerSummary(
                requestsByStatus: Dictionary(
                    uniqueKeysWithValues: state.statusCounts.map { (String($0.key), $0.value) }
                ),
                requestsTotal: state.statusCounts.values.reduce(0, +),
                series: state.seriesTotal,
                samples: state.samplesTotal,
                valueTotal: state.valueTotal,
                bodyBytes: state.bodyBytesTotal
            )
        }
    }

    /// Waits until `condition` holds for the accepted series and the request log (checked now and after every
    /// request). `condition` runs under the server's lock: it must not call the server.
    /// - Throws: ``PyroscopeTestServerError/Code/timeout`` after `timeout`; `CancellationError` when cancelled.
    public func waitUntil(
        timeout: Duration = .seconds(30),
        _ condition: @escaping @Sendable (_ series: [ReceivedSeries], _ requests: [RequestRecord]) -> Bool
    ) async throws {
        let id = self.state.withLock { state in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await withTaskCancellationHandler {
                    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                        let outcome = self.state.withLock { state -> Result<Bool, CancellationError> in
                            if condition(state.series, state.requests) { return .success(true) }
                            // Checked under the lock, so a cancellation racing this registration is never lost.
                            if Task.isCancelled { return .failure(CancellationError()) }
                            state.waiters[id] = Waiter(condition: condition, continuation: continuation)
                            return .success(false)
                        }
                        switch outcome {
                        case .success(true): continuation.resume()
                        case .success: break
                        case .failure(let error): continuation.resume(throwing: error)
                        }
                    }
                } onCancel: {
                    let waiter = self.state.withLock { $0.waiters.removeValue(forKey: id) }
                    waiter?.continuation.resume(throwing: CancellationError())
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw PyroscopeTestServerError(code: .timeout, message: "condition not met within \(timeout)")
            }
            defer { group.cancelAll() }
            try await group.next()
        }
    }

    /// Waits until at least `count` series were accepted, and returns them all.
    @discardableResult
    public func waitForSeries(count: Int, timeout: Duration = .seconds(30)) async throws -> [ReceivedSeries] {
        try await self.waitUntil(timeout: timeout) { series, _ in series.count >= count }
        return self.receivedSeries
    }

    /// Waits until at least `count` requests were answered, and returns the log.
    @discardableResult
    public func waitForRequests(count: Int, timeout: Duration = .seconds(30)) async throws -> [RequestRecord] {
        try await self.waitUntil(timeout: timeout) { _, requests in requests.count >= count }
        return self.requestLog
    }

    // MARK: Recording

    /// Records an answered request and the series it delivered, then wakes the waiters that are satisfied.
    func record(_ record: RequestRecord, accepted: [ReceivedSeries]) {
        let satisfied = self.state.withLock { state in
            state.requests.append(record)
            state.statusCounts[record.status, default: 0] += 1
            state.bodyBytesTotal += record.bodyBytes
            for series in accepted {
                state.seriesTotal += 1
                state.samplesTotal += series.profile.samples.count
                state.valueTotal &+= series.profile.total(valueIndex: 0)
            }
            state.series += accepted
            if let limit = state.maxRetainedSeries, state.series.count > limit {
                state.series.removeFirst(state.series.count - max(0, limit))
            }
            return state.satisfiedWaiters()
        }
        for waiter in satisfied { waiter.continuation.resume() }
    }
}
