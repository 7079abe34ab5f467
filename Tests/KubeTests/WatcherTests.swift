// WatcherTests.swift: the Watcher's edge cases against the test server's fault hooks; each test ends with the
// Store equal to the server's state.

import Foundation
import HearthTestSupport
import KubeClient
import KubeModel
import KubeRuntime
import KubeTestServer
import Logging
import Synchronization
import Testing

/// The (key, resourceVersion) pairs of the server's gizmos.
func serverGizmos(_ server: KubeTestServer) -> [String: String] {
    var result: [String: String] = [:]
    for object in server.objects(group: "example.com", plural: "gizmos") {
        let view = DynamicObject(object: object)
        result[view.key] = view.metadata.resourceVersion ?? ""
    }
    return result
}

func storeGizmos(_ store: Store<DynamicObject>) -> [String: String] {
    var result: [String: String] = [:]
    for object in store.all { result[object.key] = object.metadata.resourceVersion ?? "" }
    return result
}

func requests(_ server: KubeTestServer, verb: String, plural: String = "gizmos") -> [KubeTestServer.RequestRecord] {
    server.requestLog.filter { $0.verb == verb && $0.path.hasSuffix("/" + plural) }
}

var fastWatcher: Watcher<DynamicObject>.Configuration {
    var configuration = Watcher<DynamicObject>.Configuration()
    configuration.backoff = Backoff(initial: .milliseconds(20), maximum: .milliseconds(200), jitter: 0.2)
    return configuration
}

/// Runs a watcher feeding `store` in a child task for the duration of `body`.
func withReflector<Result: Sendable>(
    _ watcher: Watcher<DynamicObject>,
    into store: Store<DynamicObject>,
    _ body: () async throws -> Result
) async throws -> Result {
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            for try await event in watcher { store.apply(event) }
        }
        defer { group.cancelAll() }
        return try await body()
    }
}

@Suite("Watcher", .timeLimit(.minutes(2)))
struct WatcherTests {
    @Test("410 Gone in the middle of a watch makes the watcher relist; deletions it missed are dropped")
    func goneMidWatch() async throws {
        try await withServerAndClient { server, client in
            try await Gizmo.install(client)
            let gizmos = client.resource(Gizmo.type, namespace: "default")
            for name in ["a", "b", "c"] { _ = try await gizmos.create(Gizmo.object(name)) }
            let store = Store<DynamicObject>()
            var iterator = Watcher(gizmos, configuration: fastWatcher, logger: testLogger())
                .makeAsyncIterator()
            // Initial list.
            while let event = try await iterator.next() {
                store.apply(event)
                if case .initDone = event { break }
            }
            #expect(store.count == 3)
            // One live event through the watch.
            _ = try await gizmos.create(Gizmo.object("d"))
            let live = try #require(try await iterator.next())
            guard case .apply(let d) = live else {
                Issue.record("expected apply, got \(live)")
                return
            }
            #expect(d.metadata.name == "d")
            store.apply(live)
            // The server expires the watch; the next changes are never sent on it.
            server.expireWatches()
            _ = try await gizmos.delete("a")
            _ = try await gizmos.patch("b", .merge(["spec": ["size": 9]]))
            _ = try await gizmos.create(Gizmo.object("e"))
            var sawRelist = false
            while let event = try await iterator.next() {
                if case .initStarted = event { sawRelist = true }
                if case .apply = event { Issue.record("expected a relist first, got \(event)") }
                store.apply(event)
                if case .initDone = event { break }
            }
            #expect(sawRelist)
            #expect(storeGizmos(store) == serverGizmos(server))
            #expect(store.get(namespace: "default", name: "a") == nil)
            #expect(store.get(namespace: "default", name: "b")?.spec?["size"] == 9)
            #expect(requests(server, verb: "list").count == 2)
        }
    }

    @Test("bookmarks advance the resume point, so a re-watch after compaction needs no relist")
    func bookmarkResume() async throws {
        var serverConfiguration = KubeTestServer.Configuration()
        serverConfiguration.bookmarkInterval = .milliseconds(100)
        try await withServerAndClient(configuration: serverConfiguration) { server, client in
            try await Gizmo.install(client)
            let gizmos = client.resource(Gizmo.type, namespace: "default")
            _ = try await gizmos.create(Gizmo.object("a"))
            var configuration = fastWatcher
            configuration.minTimeoutSeconds = 2
            let store = Store<DynamicObject>()
            try await withReflector(
                Watcher(gizmos, configuration: configuration, logger: testLogger()),
                into: store
            ) {
                #expect(await eventually { store.hasSynced && store.count == 1 })
                // Writes to another resource move the global resourceVersion past the watcher's last event.
                let configMaps = client.resource(ConfigMap.self, namespace: "default")
                for index in 0..<5 {
                    _ = try await configMaps.create(ConfigMap(name: "cm\(index)", namespace: "default"))
                }
                let target = server.resourceVersion
                // A later watch resumes at or past `target`: only a bookmark can have told the watcher that version.
                #expect(
                    await eventually(timeout: .seconds(20)) {
                        requests(server, verb: "watch").contains {
                            Int64($0.query["resourceVersion"] ?? "") ?? 0 >= target
                        }
                    }
                )
                // History before `target` is gone now; resuming from the last gizmo event would need a relist.
                server.compactHistory()
                let watches = requests(server, verb: "watch").count
                #expect(await eventually(timeout: .seconds(20)) { requests(server, verb: "watch").count > watches })
                _ = try await gizmos.create(Gizmo.object("b"))
                #expect(await eventually { storeGizmos(store) == serverGizmos(server) })
            }
            #expect(requests(server, verb: "list").count == 1)
        }
    }

    @Test("a dropped connection is resumed from the last resourceVersion")
    func droppedConnection() async throws {
        try await withServerAndClient { server, client in
            try await Gizmo.install(client)
            let gizmos = client.resource(Gizmo.type, namespace: "default")
            _ = try await gizmos.create(Gizmo.object("a"))
            let store = Store<DynamicObject>()
            try await withReflector(
                Watcher(gizmos, configuration: fastWatcher, logger: testLogger()),
                into: store
            ) {
                #expect(await eventually { store.hasSynced && server.openWatchCount == 1 })
                for round in 0..<3 {
                    server.dropWatches()
                    _ = try await gizmos.create(Gizmo.object("x\(round)"))
                    _ = try await gizmos.patch("a", .merge(["spec": ["size": .int(Int64(round + 2))]]))
                    #expect(await eventually { storeGizmos(store) == serverGizmos(server) })
                }
                _ = try await gizmos.delete("x0")
                #expect(await eventually { storeGizmos(store) == serverGizmos(server) })
            }
            #expect(requests(server, verb: "list").count == 1)
            #expect(requests(server, verb: "watch").count >= 2)
        }
    }

    @Test("JSON lines split across chunks are reassembled")
    func splitLines() async throws {
        try await withServerAndClient { server, client in
            try await Gizmo.install(client)
            server.setSplitWatchEvents(true)
            let gizmos = client.resource(Gizmo.type, namespace: "default")
            let store = Store<DynamicObject>()
            try await withReflector(
                Watcher(gizmos, configuration: fastWatcher, logger: testLogger()),
                into: store
            ) {
                #expect(await eventually { store.hasSynced && server.openWatchCount == 1 })
                for index in 0..<5 {
                    var object = Gizmo.object("big\(index)")
                    var tags: JSONObject = [:]
                    for tag in 0..<200 { tags["tag\(tag)"] = .string(String(repeating: "x", count: 100)) }
                    object.spec?.setValue(.object(tags), at: ["tags"])
                    _ = try await gizmos.create(object)
                }
                #expect(await eventually { storeGizmos(store) == serverGizmos(server) && store.count == 5 })
                #expect(store.get(namespace: "default", name: "big4")?.spec?["tags"]?.objectValue?.count == 200)
            }
            #expect(requests(server, verb: "list").count == 1)
            #expect(requests(server, verb: "watch").count == 1)
        }
    }

    @Test("server-side watch timeouts are resumed without relisting")
    func serverTimeout() async throws {
        try await withServerAndClient { server, client in
            try await Gizmo.install(client)
            let gizmos = client.resource(Gizmo.type, namespace: "default")
            var configuration = fastWatcher
            configuration.minTimeoutSeconds = 1
            let store = Store<DynamicObject>()
            try await withReflector(
                Watcher(gizmos, configuration: configuration, logger: testLogger()),
                into: store
            ) {
                #expect(await eventually { store.hasSynced })
                var round = 0
                let rewatched = try await eventually(timeout: .seconds(30), every: .milliseconds(300)) {
                    round += 1
                    _ = try await gizmos.create(Gizmo.object("g\(round)"))
                    return requests(server, verb: "watch").count >= 3
                }
                #expect(rewatched)
                #expect(await eventually { storeGizmos(store) == serverGizmos(server) })
            }
            #expect(requests(server, verb: "list").count == 1)
            for watch in requests(server, verb: "watch") {
                #expect(watch.query["timeoutSeconds"].flatMap(Int.init).map { (1...2).contains($0) } == true)
                #expect(watch.query["allowWatchBookmarks"] == "true")
            }
        }
    }

    @Test("a silent watch hits the read-idle timeout and reconnects")
    func idleTimeout() async throws {
        var serverConfiguration = KubeTestServer.Configuration()
        serverConfiguration.bookmarkInterval = .seconds(3600)
        let idleTimeout: (inout ClientConfiguration) -> Void = { $0.watchIdleTimeout = .milliseconds(500) }
        try await withServerAndClient(configuration: serverConfiguration, clientSettings: idleTimeout) {
            server,
            client in
            try await Gizmo.install(client)
            let gizmos = client.resource(Gizmo.type, namespace: "default")
            let store = Store<DynamicObject>()
            try await withReflector(
                Watcher(gizmos, configuration: fastWatcher, logger: testLogger()),
                into: store
            ) {
                #expect(await eventually { requests(server, verb: "watch").count >= 3 })
                _ = try await gizmos.create(Gizmo.object("late"))
                #expect(await eventually { storeGizmos(store) == serverGizmos(server) && store.count == 1 })
            }
            #expect(requests(server, verb: "list").count == 1)
        }
    }

    @Test("429 and 500 answers are retried with backoff until the list succeeds")
    func retriesServerErrors() async throws {
        try await withServerAndClient { server, client in
            try await Gizmo.install(client)
            let gizmos = client.resource(Gizmo.type, namespace: "default")
            _ = try await gizmos.create(Gizmo.object("a"))
            server.injectFailures(code: 500, count: 2, pathContains: "/gizmos", method: "GET")
            server.injectFailures(code: 429, count: 1, pathContains: "/gizmos", method: "GET")
            let store = Store<DynamicObject>()
            try await withReflector(
                Watcher(gizmos, configuration: fastWatcher, logger: testLogger()),
                into: store
            ) {
                #expect(await eventually { store.hasSynced && storeGizmos(store) == serverGizmos(server) })
            }
            let codes = requests(server, verb: "list").map(\.code)
            #expect(codes.prefix(3).sorted() == [429, 500, 500])
            #expect(codes.last == 200)
        }
    }

    @Test("an unreachable API server gives spaced retries, not a crash or a log storm")
    func unreachableServer() async throws {
        // A port that was just free.
        let port = try await KubeTestServer.withRunning(logger: testLogger()) { $0.port }
        let records = LogRecords()
        var logger = Logger(label: "watcher") { _ in records }
        logger.logLevel = .info
        var settings = testClientConfiguration("http://127.0.0.1:\(port)")
        settings.timeout = .seconds(1)
        try await withKubeClient(configuration: settings, logger: testLogger()) { client in
            var configuration = Watcher<DynamicObject>.Configuration()
            configuration.backoff = Backoff(initial: .milliseconds(100), maximum: .milliseconds(800), jitter: 0)
            let watcher = Watcher(
                client.resource(Gizmo.type, namespace: "default"),
                configuration: configuration,
                logger: logger
            )
            let store = Store<DynamicObject>()
            try await withReflector(watcher, into: store) {
                #expect(await eventually { records.count >= 4 })
                try await Task.sleep(for: .seconds(1))
            }
            // 100 + 200 + 400 + 800 + 800 ms: a handful of attempts in ~2.5 s, never a tight loop.
            #expect(records.count >= 4 && records.count <= 8, "\(records.count) attempts")
            #expect(records.messages.allSatisfy { $0 == "list failed; retrying" })
            #expect(records.levels.prefix(4) == [.info, .info, .debug, .info])
            #expect(!store.hasSynced)
        }
    }
}

/// Captures log records.
final class LogRecords: LogHandler, Sendable {
    let storage = Mutex<[(String, Logger.Level)]>([])
    var count: Int { self.storage.withLock { $0.count } }
    var messages: [String] { self.storage.withLock { $0.map(\.0) } }
    var levels: [Logger.Level] { self.storage.withLock { $0.map(\.1) } }

    func log(event: LogEvent) {
        self.storage.withLock { $0.append((event.message.description, event.level)) }
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
        get { .trace }
        set {}
    }
}
