// KubeTestServer.swift: the public face of the in-memory API server: lifecycle, fault hooks, request log.

import Foundation
import KubeModel
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// An error of the test server's own API.
public struct KubeTestServerError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { self.message }
}

/// An in-memory Kubernetes API server with the semantics controllers and kubectl rely on.
///
/// Run it scoped with ``withRunning(configuration:logger:_:)``; the body gets the server with its bound port.
public final class KubeTestServer: Sendable {
    /// Settings, with defaults suited to tests.
    public struct Configuration: Sendable {
        /// Address to bind (default `127.0.0.1`).
        public var host: String = "127.0.0.1"
        /// Port to bind; 0 picks an ephemeral port (default 0).
        public var port: Int = 0
        /// How often watches that allow bookmarks get one (default 1 s; the real server sends about one a minute).
        public var bookmarkInterval: Duration = .seconds(1)
        /// Granularity of watch timeouts and liveness checks (default 100 ms).
        public var tickInterval: Duration = .milliseconds(100)
        /// Events kept for watches before the oldest are compacted (default 200,000).
        public var maxHistory: Int = 200_000

        public init() {}
    }

    /// One answered request.
    public struct RequestRecord: Sendable, Hashable {
        public var method: String
        public var path: String
        public var query: [String: String]
        public var code: Int
        public var userAgent: String
        public var contentType: String

        /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection` or `discovery`.
        public var verb: String

        /// True for create, update, patch and delete.
        public var isWrite: Bool { ["create", "update", "patch", "delete", "deletecollection"].contains(self.verb) }
    }

    struct Fault: Sendable {
        var code: Int
        var remaining: Int
        var pathContains: String?
        var method: String?
    }

    struct Faults: Sendable {
        var delay: Duration?
        var failures: [Fault] = []
        var splitWatchEvents = false
    }

    let configuration: Configuration
    let logger: Logger
    let state: Mutex<ServerState>
    let faults = Mutex(Faults())
    let log = Mutex<[RequestRecord]>([])
    let boundPort = Mutex<Int>(0)

    public init(configuration: Configuration = .init(), logger: Logger = Logger(label: "kube-test-server")) {
        self.configuration = configuration
        self.logger = logger
        var state = ServerState()
        state.maxHistory = configuration.maxHistory
        self.state = Mutex(state)
    }

    /// The bound port (after the server started).
    public var port: Int { self.boundPort.withLock { $0 } }

    /// `http://127.0.0.1:PORT`.
    public var url: String { "http://\(self.configuration.host):\(self.port)" }

    /// Runs a server for the duration of `body`.
    public static func withRunning<Result: Sendable>(
        configuration: Configuration = .init(),
        logger: Logger = Logger(label: "kube-test-server"),
        _ body: (KubeTestServer) async throws -> Result
    ) async throws -> Result {
        let server = KubeTestServer(configuration: configuration, logger: logger)
        let channel = try await server.bind()
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve(channel) }
            do {
                let result = try await body(server)
                group.cancelAll()
                return result
            } catch {
                group.cancelAll()
                throw error
            }
        }
    }

    /// Binds and serves until the task is cancelled. `onBound` receives the port.
    public func run(onBound: @Sendable (Int) -> Void = { _ in }) async throws {
        let channel = try await self.bind()
        onBound(self.port)
        try await self.serve(channel)
    }

    typealias ServerChannel = NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>

    func bind() async throws -> ServerChannel {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: self.configuration.host, port: self.configuration.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(
                        wrappingChannelSynchronously: channel
                    )
                }
            }
        self.boundPort.withLock { $0 = channel.channel.localAddress?.port ?? 0 }
        self.logger.info("kube-test-server listening", metadata: ["server.port": "\(self.port)"])
        return channel
    }

    func serve(_ channel: ServerChannel) async throws {
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                while !Task.isCancelled {
                    try await Task.sleep(for: self.configuration.tickInterval)
                    self.state.withLock { state in
                        for continuation in state.watchers.values { continuation.yield(.tick(state.rv)) }
                    }
                }
            }
            try await channel.executeThenClose { inbound in
                for try await connection in inbound {
                    group.addTask { await self.handle(connection) }
                }
            }
        }
    }

    // MARK: Test hooks

    /// Closes every open watch stream abruptly (no terminating chunk), as a dropped connection would.
    public func dropWatches() {
        self.state.withLock { state in
            for continuation in state.watchers.values { continuation.yield(.drop) }
        }
    }

    /// Makes every open watch answer its next event with an ERROR 410 Expired (and end), as the real server does
    /// when a watcher falls too far behind; the events themselves are not delivered, so clients must relist.
    public func expireWatches() {
        self.state.withLock { state in
            state.expiredWatchers.formUnion(state.watchers.keys)
            state.compact(to: state.rv)
        }
    }

    /// Forgets all history up to the current resourceVersion: watches from an older version get 410 Gone, and
    /// continue tokens expire.
    public func compactHistory() {
        self.state.withLock { $0.compact(to: $0.rv) }
    }

    /// Answers the next `count` matching requests with `code` (429 adds `Retry-After: 1`).
    public func injectFailures(code: Int, count: Int, pathContains: String? = nil, method: String? = nil) {
        self.faults.withLock {
            $0.failures.append(Fault(code: code, remaining: count, pathContains: pathContains, method: method))
        }
    }

    /// Delays every request (nil for none).
    public func setDelay(_ delay: Duration?) { self.faults.withLock { $0.delay = delay } }

    /// Writes each watch event in two chunks, split in the middle of the JSON line.
    public func setSplitWatchEvents(_ split: Bool) { self.faults.withLock { $0.splitWatchEvents = split } }

    /// Every answered request, oldest first.
    public var requestLog: [RequestRecord] { self.log.withLock { $0 } }

    /// Empties the request log.
    public func clearRequestLog() { self.log.withLock { $0.removeAll() } }

    /// The current global resourceVersion.
    public var resourceVersion: Int64 { self.state.withLock { $0.rv } }

    /// The number of open watch streams.
    public var openWatchCount: Int { self.state.withLock { $0.watchers.count } }

    /// Creates or replaces objects directly in storage (no HTTP), emitting watch events as real writes would.
    /// For load generation in benchmarks; each object must carry `metadata.name` (and `namespace` if namespaced).
    public func seed(group: String, plural: String, objects: [JSONObject]) throws {
        try self.state.withLock { state throws in
            guard let info = state.resources["\(group)/\(plural)"] else {
                throw KubeTestServerError(message: "unknown resource \(group)/\(plural)")
            }
            let context = WriteContext(manager: "seed", fieldValidation: .ignore)
            for object in objects {
                let meta = ObjectMeta(object: object["metadata"]?.objectValue ?? [:])
                let key = state.key(info, namespace: meta.namespace, name: meta.name ?? "")
                do {
                    if let old = state.current(info, key) {
                        var candidate = object
                        var candidateMeta = meta
                        candidateMeta.resourceVersion = nil
                        candidate["metadata"] = candidateMeta.json
                        _ = try state.commitUpdate(
                            info,
                            old: old,
                            candidate: candidate,
                            subresource: nil,
                            context: context
                        )
                    } else {
                        _ = try state.create(info, namespace: meta.namespace, body: object, context: context)
                    }
                } catch {
                    throw KubeTestServerError(message: "\((error as? APIError)?.status.message ?? "\(error)")")
                }
            }
        }
    }

    /// The stored objects of a resource (`group` empty for the core group), sorted by namespace and name.
    public func objects(group: String, plural: String) -> [JSONObject] {
        self.state.withLock { state in
            (state.objects["\(group)/\(plural)"] ?? [:]).sorted { $0.key < $1.key }.map(\.value)
        }
    }
}
