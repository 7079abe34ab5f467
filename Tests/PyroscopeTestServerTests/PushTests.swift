// PushTests.swift: the push route accepts what the agent encodes, decodes it independently, and honours the
// connect protocol's content type and encodings.

import Foundation
import HearthProfile
import NIOHTTP1
import PyroscopeTestServer
import Testing

@Suite("Push", .timeLimit(.minutes(2)))
struct PushTests {
    static func frame(_ name: String, _ address: UInt64) -> ProfileFrame {
        ProfileFrame(function: name, module: "/usr/bin/checkout", address: address, buildID: "abc123")
    }

    @Test("a pprof from HearthProfile is accepted and decoded: names, values, labels, tenant, request log")
    func agentProfile() async throws {
        let main = Self.frame("main", 0x1000)
        let work = Self.frame("work", 0x2000)
        let hash = Self.frame("hash", 0x3000)
        let idle = Self.frame("idle", 0x4000)
        let start = Date().addingTimeInterval(-10)
        let profile = CPUProfile(
            startTime: start,
            duration: .seconds(10),
            frequency: 100,
            samples: [
                ProfileSample(frames: [work, main], count: 7, labels: ["comm": "checkout", "thread": "worker"]),
                ProfileSample(frames: [hash, work, main], count: 3, labels: ["comm": "checkout"]),
                ProfileSample(frames: [idle], count: 2, numericLabels: ["tid": 42]),
            ]
        )
        let pprof = try PprofEncoder.encodeGzipped(profile)
        let series = TestSeries.cpu(pprof, extra: [("env", "prod")])

        try await withServer { server async throws in
            let reply = try await push(server, [series], tenant: "team-a")
            #expect(reply.status == 200)
            #expect(reply.headers["Content-Type"].first == "application/proto")
            #expect(reply.body.isEmpty)

            let received = try #require(server.receivedSeries.first)
            #expect(server.receivedSeries.count == 1)
            #expect(received.labels == ["__name__": "process_cpu", "service_name": "checkout", "env": "prod"])
            #expect(received.tenant == "team-a")
            #expect(received.route == .push)
            #expect(received.sampleID == "sample-0")
            #expect(received.rawProfileGzipped)
            #expect(received.rawProfileBytes == pprof.count)

            let decoded = received.profile
            #expect(decoded.sampleTypes.map(\.type) == ["samples", "cpu"])
            #expect(decoded.sampleTypes.map(\.unit) == ["count", "nanoseconds"])
            #expect(decoded.periodType == DecodedProfile.ValueType(type: "cpu", unit: "nanoseconds"))
            #expect(decoded.period == 10_000_000)
            #expect(abs(decoded.timeNanos - Int64(start.timeIntervalSince1970 * 1e9)) < 1_000_000)
            #expect(decoded.durationNanos == 10_000_000_000)
            #expect(decoded.total(valueIndex: 0) == 12)
            #expect(decoded.total(valueIndex: 1) == 120_000_000)
            #expect(decoded.valueIndex(type: "cpu") == 1)

            // Leaf-first stacks, and per-function totals both ways.
            let stacks = decoded.samples.map(\.stack)
            #expect(stacks.contains(["hash", "work", "main"]))
            #expect(stacks.contains(["work", "main"]))
            #expect(decoded.leafTotal(of: "work") == 7)
            #expect(decoded.leafTotal(of: "hash") == 3)
            #expect(decoded.inclusiveTotal(of: "work") == 10)
            #expect(decoded.inclusiveTotal(of: "main") == 10)
            #expect(decoded.inclusiveTotals(valueIndex: 1)["main"] == 100_000_000)
            #expect(decoded.leafTotals()["idle"] == 2)
            #expect(decoded.leafTotals()["main"] == nil)

            let workSample = try #require(decoded.samples.first { $0.stack == ["work", "main"] })
            #expect(workSample.labels == ["comm": "checkout", "thread": "worker"])
            let idleSample = try #require(decoded.samples.first { $0.stack == ["idle"] })
            #expect(idleSample.numericLabels == ["tid": 42])
            #expect(decoded.mappings.contains { $0.file == "/usr/bin/checkout" && $0.buildID == "abc123" })

            let record = try #require(server.requestLog.last)
            #expect(record.status == 200)
            #expect(record.path == "/push.v1.PusherService/Push")
            #expect(record.tenant == "team-a")
            #expect(!record.authorizationPresent)
            #expect(record.seriesCount == 1)
            #expect(record.profileCount == 1)
            #expect(record.bodyBytes == pushBody([series]).count)
            #expect(server.requestCountsByStatus == [200: 1])
        }
    }

    @Test("a gzip-encoded body carrying an uncompressed raw_profile is accepted")
    func gzipBody() async throws {
        try await withServer { server async throws in
            let reply = try await push(server, [.cpu(TestProfile.valid().encode())], gzipBody: true)
            #expect(reply.status == 200)
            let received = try #require(server.receivedSeries.first)
            #expect(!received.rawProfileGzipped)
            #expect(received.profile.leafTotal(of: "work") == 3)
            #expect(server.requestLog.last?.contentEncoding == "gzip")
        }
    }

    @Test("unpacked location ids and values decode like packed ones")
    func unpackedFields() async throws {
        var profile = TestProfile.valid()
        profile.unpacked = true
        try await withServer { server async throws in
            #expect(try await push(server, [.cpu(profile.encode())]).status == 200)
            let decoded = try #require(server.receivedSeries.first?.profile)
            #expect(decoded.samples.map(\.stack) == [["work", "main"], ["idle", "main"]])
            #expect(decoded.samples.map(\.values) == [[3, 30_000_000], [1, 10_000_000]])
            #expect(decoded.samples[0].labels == ["thread": "worker"])
        }
    }

    @Test("several series and raw samples in one request each become a series; a missing service_name defaults")
    func severalSeries() async throws {
        let profile = TestProfile.valid().encode()
        let gzipped = try Gzip.compress(profile)
        let series = [
            TestSeries.cpu(profile, service: "a"),
            TestSeries(labels: [("__name__", "process_cpu")], profiles: [profile, gzipped]),
        ]
        try await withServer { server async throws in
            #expect(try await push(server, series).status == 200)
            let received = server.receivedSeries
            #expect(received.map { $0.labels["service_name"] } == ["a", "unknown_service", "unknown_service"])
            #expect(received.map(\.sampleID) == ["sample-0", "sample-0", "sample-1"])
            #expect(received.map(\.tenant) == [nil, nil, nil])
            #expect(server.requestLog.last?.seriesCount == 2)
            #expect(server.requestLog.last?.profileCount == 3)
        }
    }

    @Test("a profile without time_nanos is stamped with the time it arrived")
    func timeZeroMeansNow() async throws {
        var profile = TestProfile.valid()
        profile.timeNanos = 0
        try await withServer { server async throws in
            let before = Int64(Date().timeIntervalSince1970 * 1e9)
            #expect(try await push(server, [.cpu(profile.encode())]).status == 200)
            let after = Int64(Date().timeIntervalSince1970 * 1e9)
            let stamped = try #require(server.receivedSeries.first?.profile.timeNanos)
            #expect(stamped >= before && stamped <= after)
        }
    }

    @Test("a request without profiles is rejected: no profiles received")
    func noProfiles() async throws {
        try await withServer { server async throws in
            for series in [[], [TestSeries(labels: [("__name__", "process_cpu")], profiles: [])]] {
                let reply = try await push(server, series)
                #expect(reply.status == 400)
                #expect(reply.connectError?.code == "invalid_argument")
                #expect(reply.connectError?.message == "no profiles received")
            }
        }
    }

    @Test("content types other than application/proto get 415; unknown encodings and protocol versions fail")
    func contentNegotiation() async throws {
        let body = pushBody([.cpu(TestProfile.valid().encode())])
        let path = "/push.v1.PusherService/Push"
        try await withServer { server async throws in
            for contentType in ["application/json", "text/plain", "application/x-protobuf"] {
                let reply = try await send(server, .POST, path, body: body, headers: [("Content-Type", contentType)])
                #expect(reply.status == 415, "\(contentType)")
            }
            let withCharset = try await send(
                server,
                .POST,
                path,
                body: body,
                headers: [("Content-Type", "application/proto; charset=binary")]
            )
            #expect(withCharset.status == 200)

            let brotli = try await send(
                server,
                .POST,
                path,
                body: body,
                headers: [("Content-Type", "application/proto"), ("Content-Encoding", "br")]
            )
            #expect(brotli.status == 501)
            #expect(brotli.connectError?.code == "unimplemented")

            let version = try await send(
                server,
                .POST,
                path,
                body: body,
                headers: [("Content-Type", "application/proto"), ("Connect-Protocol-Version", "2")]
            )
            #expect(version.status == 400)

            let badGzip = try await send(
                server,
                .POST,
                path,
                body: [0x1F, 0x8B, 0x08, 0x00, 0x01],
                headers: [("Content-Type", "application/proto"), ("Content-Encoding", "gzip")]
            )
            #expect(badGzip.status == 400)

            let get = try await send(server, .GET, path)
            #expect(get.status == 405)
            #expect(server.receivedSeries.count == 1)
        }
    }

    @Test("a request whose second series is invalid stores nothing")
    func atomicRequests() async throws {
        let good = TestSeries.cpu(TestProfile.valid().encode())
        let bad = TestSeries.cpu([0x0A, 0xFF])
        try await withServer { server async throws in
            let reply = try await push(server, [good, bad])
            #expect(reply.status == 400)
            #expect(server.receivedSeries.isEmpty)
            #expect(server.summary().series == 0)
        }
    }
}
