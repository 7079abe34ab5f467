// DeliveryTests.swift: the spool, profile splitting at the server's limits, and the pusher against the
// Pyroscope test receiver (status codes, retries, the legacy API, tenants and credentials).

import AsyncHTTPClient
import Foundation
import HearthAPI
import HearthProfile
import HearthTestSupport
import Logging
import Metrics
import MetricsTestKit
import PyroscopeTestServer
import ServiceLifecycle
import Testing

@testable import HearthAgent

private func series(_ name: String, bytes: Int) -> ProfileSeries {
    ProfileSeries(labels: ["service_name": name], profiles: [[UInt8](repeating: 1, count: bytes)])
}

private func batch(_ name: String, bytes: Int, backend: String = "http://p") -> PushBatch {
    PushBatch(
        backend: AgentConfiguration.Backend(url: backend),
        series: [series(name, bytes: bytes)],
        start: Date(),
        end: Date()
    )
}

@Suite("Delivery spool")
struct DeliverySpoolTests {
    @Test("drops the oldest batches beyond the budget, keeps the newest, counts the drops")
    func dropOldest() async {
        let spool = DeliverySpool(limitBytes: 250)
        #expect(spool.enqueue(batch("a", bytes: 100)) == 0)
        #expect(spool.enqueue(batch("b", bytes: 100)) == 0)
        #expect(spool.enqueue(batch("c", bytes: 100)) == 1)
        #expect(spool.bytes == 200 && spool.count == 2 && spool.droppedProfiles == 1)
        let first = await spool.first()
        #expect(first?.series.first?.labels["service_name"] == "b")
        // One batch larger than the budget is still kept (alone).
        #expect(spool.enqueue(batch("huge", bytes: 1000)) == 2)
        #expect(spool.count == 1)
        #expect(spool.contains(first!.id) == false)
        let huge = await spool.first()
        spool.remove(huge!.id)
        #expect(spool.count == 0 && spool.bytes == 0)
    }

    @Test("a full spool drops the oldest batch of the fullest backend, never another backend's")
    func fairDrops() async {
        let (down, up) = (AgentConfiguration.Backend(url: "http://down"), AgentConfiguration.Backend(url: "http://up"))
        let spool = DeliverySpool(limitBytes: 350)
        for name in ["down-1", "down-2", "down-3"] {
            #expect(spool.enqueue(batch(name, bytes: 100, backend: down.url)) == 0)
        }
        // 400 bytes: the backend that is down holds 300 of them and loses its oldest.
        #expect(spool.enqueue(batch("up-1", bytes: 100, backend: up.url)) == 1)
        #expect(spool.bytes(for: down) == 200 && spool.bytes(for: up) == 100)
        #expect(await spool.first(for: up)?.series.first?.labels["service_name"] == "up-1")
        #expect(await spool.first(for: down)?.series.first?.labels["service_name"] == "down-2")
        // The newest batch is kept even when it alone is over the budget; the others make room.
        #expect(spool.enqueue(batch("up-huge", bytes: 1000, backend: up.url)) == 3)
        #expect(spool.count == 1 && spool.bytes(for: down) == 0)
        #expect(await spool.nextBackend(notIn: []) == up)
        #expect(await spool.nextBackend(notIn: [down]) == up)
        spool.close()
        #expect(await spool.nextBackend(notIn: [up]) == nil)
    }

    @Test("first() waits for a batch and returns nil once closed")
    func waits() async {
        let spool = DeliverySpool(limitBytes: 1 << 20)
        async let next = spool.first()
        try? await Task.sleep(for: .milliseconds(50))
        spool.enqueue(batch("late", bytes: 10))
        #expect(await next?.series.first?.labels["service_name"] == "late")
        let closing = DeliverySpool(limitBytes: 1 << 20)
        async let none = closing.first()
        closing.close()
        #expect(await none == nil)
    }
}

@Suite("Profile limits")
struct ProfileLimitTests {
    static func profile(stacks: Int) -> CPUProfile {
        CPUProfile(
            startTime: Date(),
            duration: .seconds(15),
            frequency: 99,
            samples: (0..<stacks).map { index in
                ProfileSample(
                    frames: [ProfileFrame(function: "f\(index)", module: "/bin/x", address: UInt64(index + 1))],
                    count: 1
                )
            }
        )
    }

    @Test("a profile over the sample limit is split; none exceeds the limits; no sample is lost")
    func split() throws {
        let parts = try PyroscopeSink.encode(Self.profile(stacks: 40_001))
        #expect(parts.count == 3)
        let bytesLimited = try PyroscopeSink.encode(Self.profile(stacks: 3_000), maxSamples: 16_000, maxBytes: 64 << 10)
        #expect(bytesLimited.count > 1)
        #expect(try PyroscopeSink.encode(Self.profile(stacks: 10)).count == 1)
    }

    @Test("the Pyroscope sink spools one batch per backend, series in the order given, each within the limits")
    func sinkBatchesByBackend() async throws {
        let spool = DeliverySpool(limitBytes: 64 << 20)
        let metrics = TestMetrics()
        let sink = PyroscopeSink(spool: spool, metrics: AgentMetrics(factory: metrics), logger: Logger(label: "test"))
        let (first, second) = (AgentConfiguration.Backend(url: "http://a"), AgentConfiguration.Backend(url: "http://b"))
        let start = Date(timeIntervalSince1970: 1_000)
        sink.accept(
            [
                SeriesProfile(backend: first, labels: ["service_name": "x"], profile: Self.profile(stacks: 20_000)),
                SeriesProfile(backend: second, labels: ["service_name": "y"], profile: Self.profile(stacks: 5)),
                SeriesProfile(backend: first, labels: ["service_name": "z"], profile: Self.profile(stacks: 5)),
            ],
            start: start,
            end: start + 15
        )
        #expect(spool.count == 2)
        var batches: [PushBatch] = []
        while spool.count > 0, let batch = await spool.first() {
            batches.append(batch)
            spool.remove(batch.id)
        }
        let toFirst = try #require(batches.first { $0.backend == first })
        #expect(toFirst.series.map { $0.labels["service_name"] } == ["x", "z"])
        // 20,000 stacks are over Pyroscope's 16,000 samples a profile: two profiles in the one series.
        #expect(toFirst.series.first?.profiles.count == 2)
        #expect(toFirst.start == start && toFirst.end == start + 15)
        let toSecond = try #require(batches.first { $0.backend == second })
        #expect(toSecond.series.map { $0.labels["service_name"] } == ["y"])
    }
}

@Suite("Pyroscope pusher", .serialized)
struct PusherTests {
    static func pprof(_ function: String) throws -> [UInt8] {
        try PprofEncoder.encodeGzipped(
            CPUProfile(
                startTime: Date(),
                duration: .seconds(15),
                frequency: 99,
                samples: [
                    ProfileSample(frames: [ProfileFrame(function: function, module: "/bin/x", address: 1)], count: 3)
                ]
            ),
            options: .init(sampleTypes: .cpuOnly)
        )
    }

    static func makeBatch(_ server: PyroscopeTestServer, tenant: String? = nil, basic: Bool = false) throws -> PushBatch
    {
        var backend = AgentConfiguration.Backend(url: server.url, tenantID: tenant)
        if basic { backend.basicAuth = AgentConfiguration.BasicAuth(username: "u", passwordFile: "password") }
        return PushBatch(
            backend: backend,
            series: [
                ProfileSeries(
                    labels: ["__name__": "process_cpu", "service_name": "shop/a", "pod": "a-1"],
                    profiles: [try pprof("hot_a")]
                ),
                ProfileSeries(
                    labels: ["__name__": "process_cpu", "service_name": "shop/b", "pod": "b-1"],
                    profiles: [try pprof("hot_b")]
                ),
            ],
            start: Date().addingTimeInterval(-15),
            end: Date()
        )
    }

    static func withPusher(
        credentials: String = "/nonexistent",
        _ body: (PyroscopeTestServer, PyroscopePusher, TestMetrics) async throws -> Void
    ) async throws {
        try await PyroscopeTestServer.withRunning { server in
            let metrics = TestMetrics()
            var configuration = PyroscopePusher.Configuration(credentialsDirectory: credentials)
            configuration.minBackoff = .milliseconds(20)
            configuration.maxBackoff = .milliseconds(100)
            let pusher = PyroscopePusher(
                spool: DeliverySpool(limitBytes: 1 << 20),
                configuration: configuration,
                metrics: AgentMetrics(factory: metrics),
                logger: Logger(label: "test")
            )
            try await body(server, pusher, metrics)
        }
    }

    @Test("one push request carries every series of a backend, with the tenant; the receiver validates them")
    func batched() async throws {
        try await Self.withPusher { server, pusher, _ in
            let outcome1 = await pusher.deliver(try Self.makeBatch(server, tenant: "shop"))
            #expect(outcome1 == .delivered)
            let series = server.receivedSeries
            #expect(server.requestLog.count == 1)
            #expect(series.count == 2)
            #expect(Set(series.map { $0.labels["service_name"] ?? "" }) == ["shop/a", "shop/b"])
            #expect(series.allSatisfy { $0.tenant == "shop" && $0.route == .push })
            // Three samples at 99 Hz: three periods of 1e9 / 99 ns (whole nanoseconds).
            let total: Int64? = series.first { $0.labels["pod"] == "a-1" }?.profile.leafTotal(of: "hot_a")
            let expected: Int64 = 3 * (1_000_000_000 / 99)
            #expect(total == expected, "\(String(describing: total)) vs \(expected)")
        }
    }

    @Test("429 and 5xx are retried by the service until delivered; a 400 is not retried")
    func retries() async throws {
        try await Self.withPusher { server, pusher, metrics in
            server.failNext(count: 2, status: 503)
            pusher.spool.enqueue(try Self.makeBatch(server))
            let group = ServiceGroup(services: [pusher], logger: Logger(label: "test"))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                _ = try await server.waitForSeries(count: 2, timeout: .seconds(10))
                #expect(server.requestLog.map(\.status) == [503, 503, 200])

                // A 400 is dropped after one request.
                server.failNext(count: 1, status: 400, connectCode: .invalidArgument)
                pusher.spool.enqueue(try Self.makeBatch(server))
                _ = try await server.waitForRequests(count: 4, timeout: .seconds(10))
                #expect(
                    try await eventually(timeout: .seconds(5)) { pusher.spool.count == 0 },
                    "the rejected batch left the spool"
                )
                try await Task.sleep(for: .milliseconds(300))
                #expect(server.requestLog.map(\.status) == [503, 503, 200, 400])
                #expect(
                    try metrics.expectCounter("hearth_agent_push_failures_total", [("code", "503")]).totalValue == 2
                )
                #expect(
                    try metrics.expectCounter("hearth_agent_push_failures_total", [("code", "400")]).totalValue == 1
                )
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
        }
    }

    @Test("a server without the push API gets /ingest, one profile per request, labels in the name")
    func legacyIngest() async throws {
        try await Self.withPusher { server, pusher, _ in
            server.pushAPIEnabled = false
            let outcome2 = await pusher.deliver(try Self.makeBatch(server))
            #expect(outcome2 == .delivered)
            #expect(server.requestLog.map(\.status) == [404, 200, 200])
            let series = server.receivedSeries
            #expect(series.allSatisfy { $0.route == .ingest })
            #expect(Set(series.map { $0.labels["service_name"] ?? "" }) == ["shop/a", "shop/b"])
            #expect(Set(series.map { $0.labels["pod"] ?? "" }) == ["a-1", "b-1"])
            // Remembered: the next batch goes to /ingest directly.
            let outcome3 = await pusher.deliver(try Self.makeBatch(server))
            #expect(outcome3 == .delivered)
            #expect(server.requestLog.count == 5)
        }
    }

    @Test("basic auth from the credential file, read at every request (a rotated password applies at once)")
    func credentials() async throws {
        try await withTemporaryDirectory { directory in
            try Data("first\n".utf8).write(to: URL(fileURLWithPath: directory + "/password"))
            try await Self.withPusher(credentials: directory) { server, pusher, _ in
                server.authentication = .basic(user: "u", password: "first")
                let outcome4 = await pusher.deliver(try Self.makeBatch(server, basic: true))
                #expect(outcome4 == .delivered)
                server.authentication = .basic(user: "u", password: "second")
                let refused = await pusher.deliver(try Self.makeBatch(server, basic: true))
                guard case .rejected(401, _) = refused else {
                    Issue.record("a wrong password must be refused with 401, not retried: \(refused)")
                    return
                }
                try Data("second".utf8).write(to: URL(fileURLWithPath: directory + "/password"))
                let outcome5 = await pusher.deliver(try Self.makeBatch(server, basic: true))
                #expect(outcome5 == .delivered)
                #expect(server.requestLog.allSatisfy { $0.authorizationPresent })
            }
        }
    }
}

@Suite("Push backoff")
struct PushBackoffTests {
    @Test(
        "a backend that drips its body or answers 429 with Retry-After delays no other backend's profiles",
        .timeLimit(.minutes(2))
    )
    func fairDelivery() async throws {
        let drip = try ScriptedHTTPServer(answer: .drip(interval: .milliseconds(200)))
        let limited = try ScriptedHTTPServer(answer: .status(429, headers: ["Retry-After": "300"]))
        defer {
            drip.stop()
            limited.stop()
        }
        try await PyroscopeTestServer.withRunning { good in
            let metrics = TestMetrics()
            var configuration = PyroscopePusher.Configuration(credentialsDirectory: "/nonexistent")
            configuration.minBackoff = .milliseconds(20)
            configuration.maxBackoff = .milliseconds(100)
            configuration.requestTimeout = .seconds(3)
            let spool = DeliverySpool(limitBytes: 1 << 20)
            let pusher = PyroscopePusher(
                spool: spool,
                configuration: configuration,
                metrics: AgentMetrics(factory: metrics),
                logger: Logger(label: "test")
            )
            func batch(to url: String) throws -> PushBatch {
                var batch = try PusherTests.makeBatch(good)
                batch.backend = AgentConfiguration.Backend(url: url)
                return batch
            }
            spool.enqueue(try batch(to: drip.url))
            spool.enqueue(try batch(to: limited.url))
            func failures(_ code: String) -> Int64 {
                (try? metrics.expectCounter("hearth_agent_push_failures_total", [("code", code)]).totalValue) ?? 0
            }
            let group = ServiceGroup(services: [pusher], logger: Logger(label: "test"))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                // The dripping answer has begun and the 429 has come: both backends' batches are still queued.
                #expect(
                    try await eventually(timeout: .seconds(30)) {
                        drip.requestTimes.count == 1 && failures("429") == 1
                    }
                )
                spool.enqueue(try batch(to: good.url))
                _ = try await good.waitForSeries(count: 2, timeout: .seconds(30))
                // Delivered while the dripping answer was still arriving.
                #expect(failures("error") == 0, "the good backend waited for the dripping one")
                // The next interval's batch too, whatever the other two do meanwhile.
                spool.enqueue(try batch(to: good.url))
                _ = try await good.waitForSeries(count: 4, timeout: .seconds(30))

                // The total deadline cuts the dripping body (60,000 bytes at 5 a second): a failure, then a retry.
                #expect(try await eventually(timeout: .seconds(30)) { drip.requestTimes.count >= 2 })
                #expect(failures("error") >= 1)
                // Retry-After: 300 keeps the 429 backend at one request, though the backoff alone is at most 100 ms.
                #expect(limited.requestTimes.count == 1)
                #expect(failures("429") == 1)
                #expect(spool.bytes(for: AgentConfiguration.Backend(url: good.url)) == 0)
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
        }
    }

    @Test("Retry-After in seconds or as an HTTP date; anything else is ignored")
    func retryAfterParsing() {
        #expect(PyroscopePusher.retryAfter("120") == .seconds(120))
        #expect(PyroscopePusher.retryAfter(" 0 ") == .seconds(0))
        let now = Date(timeIntervalSince1970: 1_700_000_000)  // Tue, 14 Nov 2023 22:13:20 GMT
        #expect(PyroscopePusher.retryAfter("Tue, 14 Nov 2023 22:13:50 GMT", now: now) == .seconds(30))
        // A date in the past: retry now.
        #expect(PyroscopePusher.retryAfter("Tue, 14 Nov 2023 22:00:00 GMT", now: now) == .zero)
        #expect(PyroscopePusher.retryAfter("-5") == nil)
        #expect(PyroscopePusher.retryAfter("soon") == nil)
    }

    @Test("doubles from the minimum, never exceeds the cap, jitters downwards only")
    func backoff() {
        let configuration = PyroscopePusher.Configuration(credentialsDirectory: "/")
        for failures in 1...40 {
            let delay = PyroscopePusher.backoff(failures: failures, configuration: configuration)
            let ideal = min(configuration.minBackoff * (1 << min(failures - 1, 20)), configuration.maxBackoff)
            #expect(delay <= ideal && delay >= ideal * 0.5, "failure \(failures): \(delay)")
        }
    }
}
