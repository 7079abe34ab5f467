// ServerTests.swift: the legacy /ingest route, /ready, authentication, fault hooks, limits on the request body,
// counters, reset and waits.

import Foundation
import HearthProfile
import NIOHTTP1
import PyroscopeTestServer
import Testing

@Suite("Server", .timeLimit(.minutes(2)))
struct ServerTests {
    let profile = TestProfile.valid().encode()

    @Test("GET /ready answers 200 ready")
    func ready() async throws {
        try await withServer { server async throws in
            let reply = try await send(server, .GET, "/ready")
            #expect(reply.status == 200)
            #expect(reply.text.trimmingCharacters(in: .whitespacesAndNewlines) == "ready")
            #expect(try await send(server, .GET, "/nope").status == 404)
        }
    }

    @Test("/ingest with name app{env=prod}: service_name app, env prod, __name__ from the sample types")
    func legacyIngest() async throws {
        let gzipped = try Gzip.compress(self.profile)
        let now = Int(Date().timeIntervalSince1970)
        try await withServer { server async throws in
            let reply = try await send(
                server,
                .POST,
                "/ingest?name=app%7Benv%3Dprod%2Cregion%3Deu%7D&format=pprof&from=\(now - 10)&until=\(now)",
                body: gzipped,
                headers: [("Content-Type", "application/octet-stream"), ("X-Scope-OrgID", "team-b")]
            )
            #expect(reply.status == 200)
            let received = try #require(server.receivedSeries.first)
            #expect(
                received.labels == [
                    "__name__": "process_cpu", "service_name": "app", "env": "prod", "region": "eu",
                ]
            )
            #expect(received.route == .ingest)
            #expect(received.tenant == "team-b")
            #expect(received.rawProfileGzipped)
            #expect(received.profile.leafTotal(of: "work") == 3)
        }
    }

    @Test("/ingest: 400 for bad parameters, 422 for a bad profile, 413 over the size limit")
    func legacyIngestErrors() async throws {
        try await withServer { server async throws in
            let missingName = try await send(server, .POST, "/ingest?format=pprof", body: self.profile)
            #expect(missingName.status == 400)
            let badFormat = try await send(server, .POST, "/ingest?name=app&format=jfr2", body: self.profile)
            #expect(badFormat.status == 400)
            let badName = try await send(server, .POST, "/ingest?name=app%7Benv&format=pprof", body: self.profile)
            #expect(badName.status == 400)
            let badFrom = try await send(server, .POST, "/ingest?name=app&format=pprof&from=yesterday")
            #expect(badFrom.status == 400)
            let badProfile = try await send(
                server,
                .POST,
                "/ingest?name=app&format=pprof",
                body: BadProfile.locationIDZero.bytes
            )
            #expect(badProfile.status == 422)
            #expect(badProfile.text.contains("location id is 0"))

            var limits = server.limits
            limits.maxProfileSizeBytes = 64
            server.limits = limits
            let tooLarge = try await send(server, .POST, "/ingest?name=app&format=pprof", body: self.profile)
            #expect(tooLarge.status == 413)
            #expect(server.receivedSeries.isEmpty)
            #expect(server.requestCountsByStatus == [400: 4, 422: 1, 413: 1])
        }
    }

    @Test("bearer and basic authentication: 401 unauthenticated when missing or wrong; secrets are not logged")
    func authentication() async throws {
        try await withServer { server async throws in
            server.authentication = .bearer(token: "s3cret-token")
            let missing = try await push(server, [.cpu(self.profile)])
            #expect(missing.status == 401)
            #expect(missing.connectError?.code == "unauthenticated")
            let wrong = try await push(server, [.cpu(self.profile)], headers: [("Authorization", "Bearer nope")])
            #expect(wrong.status == 401)
            let right = try await push(
                server,
                [.cpu(self.profile)],
                headers: [("Authorization", "Bearer s3cret-token")]
            )
            #expect(right.status == 200)

            server.authentication = .basic(user: "1234", password: "glc_key")
            let basic = "Basic " + Data("1234:glc_key".utf8).base64EncodedString()
            let wrongBasic = "Basic " + Data("1234:other".utf8).base64EncodedString()
            #expect(
                try await push(server, [.cpu(self.profile)], headers: [("Authorization", wrongBasic)]).status == 401
            )
            #expect(try await push(server, [.cpu(self.profile)], headers: [("Authorization", basic)]).status == 200)
            let ingest = try await send(server, .POST, "/ingest?name=app&format=pprof", body: self.profile)
            #expect(ingest.status == 401)
            // /ready stays open.
            #expect(try await send(server, .GET, "/ready").status == 200)

            let log = server.requestLog
            #expect(log.map(\.authorizationPresent) == [false, true, true, true, true, false, false])
            #expect(!"\(log)".contains("s3cret-token") && !"\(log)".contains("glc_key"))
            #expect(server.receivedSeries.count == 2)
        }
    }

    @Test("with the push API disabled the push route is 404, as on an old server; /ingest still works")
    func pushDisabled() async throws {
        try await withServer { server async throws in
            server.pushAPIEnabled = false
            #expect(try await push(server, [.cpu(self.profile)]).status == 404)
            #expect(try await send(server, .POST, "/ingest?name=app&format=pprof", body: self.profile).status == 200)
            server.pushAPIEnabled = true
            #expect(try await push(server, [.cpu(self.profile)]).status == 200)
        }
    }

    @Test("failNext answers the next N ingestion requests with the status, then requests succeed")
    func failNext() async throws {
        try await withServer { server async throws in
            server.failNext(count: 2, status: 503)
            server.failNext(count: 1, status: 429)
            #expect(try await send(server, .GET, "/ready").status == 200)
            let first = try await push(server, [.cpu(self.profile)])
            #expect(first.status == 503)
            #expect(first.connectError?.code == "unavailable")
            let second = try await send(server, .POST, "/ingest?name=app&format=pprof", body: self.profile)
            #expect(second.status == 503)
            let third = try await push(server, [.cpu(self.profile)])
            #expect(third.status == 429)
            #expect(third.connectError?.code == "resource_exhausted")
            #expect(third.headers["Retry-After"].first == "1")

            server.failNext(count: 1, status: 500, connectCode: .internalError)
            let custom = try await push(server, [.cpu(self.profile)])
            #expect(custom.status == 500)
            #expect(custom.connectError?.code == "internal")

            #expect(try await push(server, [.cpu(self.profile)]).status == 200)
            #expect(server.receivedSeries.count == 1)
            #expect(server.requestCountsByStatus == [200: 2, 503: 2, 429: 1, 500: 1])
        }
    }

    @Test("down answers 503 unavailable to ingestion and /ready until it is cleared")
    func down() async throws {
        try await withServer { server async throws in
            server.isDown = true
            let reply = try await push(server, [.cpu(self.profile)])
            #expect(reply.status == 503)
            #expect(reply.connectError?.code == "unavailable")
            #expect(try await send(server, .GET, "/ready").status == 503)
            server.isDown = false
            #expect(try await push(server, [.cpu(self.profile)]).status == 200)
        }
    }

    @Test("a response delay holds every ingestion answer at least that long")
    func delay() async throws {
        try await withServer { server async throws in
            server.responseDelay = .milliseconds(300)
            let clock = ContinuousClock()
            let start = clock.now
            #expect(try await push(server, [.cpu(self.profile)]).status == 200)
            #expect(clock.now - start >= .milliseconds(300))
        }
    }

    @Test("a body over the request limit gets 413 and the connection stays usable")
    func bodyLimit() async throws {
        try await withServer { server async throws in
            var limits = server.limits
            limits.maxRequestBodyBytes = 1024
            server.limits = limits
            let reply = try await send(
                server,
                .POST,
                "/push.v1.PusherService/Push",
                body: [UInt8](repeating: 0, count: 64 * 1024),
                headers: [("Content-Type", "application/proto")]
            )
            #expect(reply.status == 413)
            #expect(server.requestLog.last?.bodyBytes == 64 * 1024)
            #expect(try await send(server, .GET, "/ready").status == 200)
        }
    }

    @Test("counters, the summary and reset")
    func countersAndReset() async throws {
        try await withServer { server async throws in
            #expect(try await push(server, [.cpu(self.profile), .cpu(self.profile)]).status == 200)
            #expect(try await push(server, [.cpu(BadProfile.functionIDZero.bytes)]).status == 400)
            server.failNext(count: 5, status: 503)
            let summary = server.summary()
            #expect(summary.requestsByStatus == ["200": 1, "400": 1])
            #expect(summary.requestsTotal == 2)
            #expect(summary.series == 2)
            #expect(summary.samples == 4)
            #expect(summary.valueTotal == 8)

            server.reset()
            #expect(server.receivedSeries.isEmpty && server.requestLog.isEmpty && server.requestCountsByStatus.isEmpty)
            #expect(server.summary().series == 0)
            // Pending faults are gone too.
            #expect(try await push(server, [.cpu(self.profile)]).status == 200)
        }
    }

    @Test("waiting for series resumes when a push arrives, and times out when none does")
    func waits() async throws {
        try await withServer { server async throws in
            async let waited = server.waitForSeries(count: 2, timeout: .seconds(30))
            // The wait is registered or already checked; either way both pushes satisfy it.
            #expect(try await push(server, [.cpu(self.profile)], tenant: "a").status == 200)
            #expect(try await push(server, [.cpu(self.profile)], tenant: "b").status == 200)
            let series = try await waited
            #expect(series.map(\.tenant) == ["a", "b"])

            await #expect(throws: PyroscopeTestServerError.self) {
                try await server.waitUntil(timeout: .milliseconds(50)) { series, _ in series.count > 5 }
            }
            let requests = try await server.waitForRequests(count: 2, timeout: .seconds(1))
            #expect(requests.count == 2)
        }
    }

    @Test("keeps only the newest series when retention is limited; totals still count all")
    func retention() async throws {
        try await withServer { server async throws in
            server.maxRetainedSeries = 1
            #expect(try await push(server, [.cpu(self.profile)], tenant: "a").status == 200)
            #expect(try await push(server, [.cpu(self.profile)], tenant: "b").status == 200)
            #expect(server.receivedSeries.map(\.tenant) == ["b"])
            #expect(server.summary().series == 2)
        }
    }

    @Test("stopping while clients connect closes every accepted connection cleanly")
    func stopWhileConnecting() async throws {
        for _ in 0..<5 {
            let server = PyroscopeTestServer()
            let port = try await server.start()
            let connecting = Task.detached {
                (0..<200).reduce(0) { count, _ in count + (canConnect(port: port) ? 1 : 0) }
            }
            await server.stop()
            _ = await connecting.value
            #expect(!canConnect(port: port))
        }
    }

    @Test("stop closes the port; a second start on a running server fails")
    func lifecycle() async throws {
        let server = PyroscopeTestServer()
        let port = try await server.start()
        #expect(port > 0 && server.port == port)
        await #expect(throws: PyroscopeTestServerError.self) { try await server.start() }
        #expect(try await send(server, .GET, "/ready").status == 200)
        #expect(canConnect(port: port))
        await server.stop()
        // A raw connect: HTTP clients retry refused connections until their deadline.
        #expect(!canConnect(port: port))
    }
}
