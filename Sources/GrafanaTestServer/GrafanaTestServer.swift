// GrafanaTestServer.swift: an in-process test double of Grafana's datasource HTTP API, as documented and as
// Grafana's source behaves (shared/reference/operators.md §2): uid and name unique per organization (409),
// the optimistic `version` lock (409 when stale, unconditional when 0 or absent), secrets merged on update and
// never returned, read-only (file-provisioned) datasources answering 403, the `phlare` alias read back as
// `grafana-pyroscope-datasource`, `{"message": …}` error bodies, and 401 without valid credentials.
//
// Tests also reach behind the API: edit a datasource as a user in Grafana's UI would, provision a read-only
// one, make calls slow or fail, rotate the accepted token, and read the request log.

import Foundation
import HTTPTestServing
import HearthJSON
import Logging
import NIOHTTP1
import Synchronization

/// A stored datasource, secrets included.
public struct StoredDatasource: Sendable, Hashable {
    public var id: Int
    public var uid: String
    public var name: String
    public var type: String
    public var access: String
    public var url: String
    public var user: String = ""
    public var database: String = ""
    public var basicAuth: Bool = false
    public var basicAuthUser: String = ""
    public var withCredentials: Bool = false
    public var isDefault: Bool = false
    public var jsonData: JSONObject = [:]
    /// Decrypted secrets (Grafana stores them encrypted and never returns them).
    public var secureJsonData: [String: String] = [:]
    public var version: Int = 1
    public var readOnly: Bool = false

    /// A datasource to ``GrafanaTestServer/provision(_:)`` (the id is assigned then).
    public init(
        uid: String,
        name: String,
        type: String = "grafana-pyroscope-datasource",
        url: String,
        access: String = "proxy",
        readOnly: Bool = true
    ) {
        self.id = 0
        self.uid = uid
        self.name = name
        self.type = type
        self.url = url
        self.access = access
        self.readOnly = readOnly
    }
}

/// One request the server answered.
public struct GrafanaRequestRecord: Sendable, Hashable {
    public var method: String
    public var path: String
    public var status: Int
    public var authorization: String?
}

/// The test double.
public final class GrafanaTestServer: ScopedTestServer {
    /// Which credentials the API accepts.
    public enum Authentication: Sendable, Hashable {
        case token(String)
        case basic(username: String, password: String)
    }

    struct State: Sendable {
        var datasources: [Int: StoredDatasource] = [:]
        var nextID = 1
        var authentication: [Authentication] = []
        var delay: Duration?
        var failures: [(remaining: Int, status: Int, method: String?)] = []
        var requests: [GrafanaRequestRecord] = []
    }

    let state = Mutex(State())
    let http: TestHTTPServer
    let logger: Logger

    /// - Parameter authentication: the credentials accepted; none accepts any request.
    public init(authentication: [Authentication] = [], logger: Logger = Logger(label: "grafana-test-server")) {
        self.logger = logger
        self.http = TestHTTPServer(name: "grafana-test-server", logger: logger)
        self.state.withLock { $0.authentication = authentication }
    }

    // MARK: Lifecycle

    /// Serves on `host:port` (0 picks a free port) until ``stop()``; a stopped server may start again on the same
    /// port (Grafana restarted), keeping its datasources.
    @discardableResult
    public func start(host: String = "127.0.0.1", port: Int = 0) async throws -> Int {
        try await self.http.start(host: host, port: port) { request in await self.respond(request) }
    }

    /// Closes the socket and every connection: calls now fail with "connection refused", as when Grafana is down.
    public func stop() async { await self.http.stop() }

    public func startOnFreePort() async throws { try await self.start() }

    /// Runs a server on a free port for the duration of `body`, then stops it.
    public static func withRunning<Result>(
        authentication: [Authentication] = [],
        logger: Logger = Logger(label: "grafana-test-server"),
        _ body: (GrafanaTestServer) async throws -> Result
    ) async throws -> Result {
        try await GrafanaTestServer(authentication: authentication, logger: logger).whileRunning(body)
    }

    public var port: Int { self.http.port }
    public var url: String { self.http.url }

    // MARK: Behind the API

    /// The accepted credentials (a rotated token replaces the old one).
    public var authentication: [Authentication] {
        get { self.state.withLock { $0.authentication } }
        set { self.state.withLock { $0.authentication = newValue } }
    }

    /// A delay before every API answer (nil for none): a slow Grafana.
    public var responseDelay: Duration? {
        get { self.state.withLock { $0.delay } }
        set { self.state.withLock { $0.delay = newValue } }
    }

    /// The next `count` API calls (of `method`, or any) answer `status` with `{"message": "injected failure"}`.
    public func failNext(count: Int, status: Int, method: String? = nil) {
        self.state.withLock { $0.failures.append((count, status, method)) }
    }

    /// Every datasource, by uid.
    public var datasources: [String: StoredDatasource] {
        self.state.withLock { state in
            Dictionary(state.datasources.values.map { ($0.uid, $0) }, uniquingKeysWith: { first, _ in first })
        }
    }

    /// Adds a datasource as file provisioning does (read-only unless `readOnly` is false).
    public func provision(_ datasource: StoredDatasource) {
        self.state.withLock { state in
            var datasource = datasource
            datasource.id = state.nextID
            state.nextID += 1
            state.datasources[datasource.id] = datasource
        }
    }

    /// Changes a datasource as a user saving it in Grafana's UI does (the version goes up). False when absent.
    @discardableResult
    public func editAsUser(uid: String, _ change: (inout StoredDatasource) -> Void) -> Bool {
        self.state.withLock { state in
            guard let id = state.datasources.values.first(where: { $0.uid == uid })?.id else { return false }
            change(&state.datasources[id]!)
            state.datasources[id]!.version += 1
            return true
        }
    }

    /// Deletes a datasource as a user in Grafana's UI does.
    public func deleteAsUser(uid: String) {
        self.state.withLock { state in state.datasources = state.datasources.filter { $0.value.uid != uid } }
    }

    /// Requests answered so far, oldest first.
    public var requests: [GrafanaRequestRecord] { self.state.withLock { $0.requests } }

    /// Forgets the request log.
    public func clearRequests() { self.state.withLock { $0.requests.removeAll() } }

    /// Waits until `condition` holds for the stored datasources (polled every 20 ms), or throws after `timeout`.
    public func waitUntil(
        timeout: Duration = .seconds(30),
        _ condition: @Sendable ([String: StoredDatasource]) -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + timeout
        while !condition(self.datasources) {
            guard ContinuousClock.now < deadline else {
                throw GrafanaTestServerError(message: "the datasources did not reach the expected state in \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}

/// A wait that ran out.
public struct GrafanaTestServerError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { "GrafanaTestServerError: \(self.message)" }
}
