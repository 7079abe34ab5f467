// ValidationTests.swift: each of Pyroscope's per-profile and per-series rules, as a 400 invalid_argument with the
// server's message, and the limits at their boundaries.

import Foundation
import HearthProfile
import NIOHTTP1
import PyroscopeTestServer
import Testing

/// A profile that breaks one rule.
enum BadProfile: String, CaseIterable, Sendable {
    case notProtobuf
    case noSampleTypes
    case stringTableStartsNonEmpty
    case stringIndexOutOfRange
    case locationIDZero
    case functionIDZero
    case unknownLocation
    case unknownFunction
    case valueCountMismatch
    case sampleTypeWithDash
    case invalidUTF8String
    case olderThanOneHour
    case newerThanTenMinutes

    var bytes: [UInt8] {
        var profile = TestProfile.valid()
        let now = Date().timeIntervalSince1970
        switch self {
        case .notProtobuf: return [0x0A, 0xFF, 0x01]
        case .noSampleTypes: profile.sampleTypes = []
        case .stringTableStartsNonEmpty: profile.strings[0] = Array("x".utf8)
        case .stringIndexOutOfRange: profile.functions[0].name = 99
        case .locationIDZero: profile.locations[0].id = 0
        case .functionIDZero: profile.functions[0].id = 0
        case .unknownLocation: profile.samples[0].locations.append(42)
        case .unknownFunction: profile.locations[0].functions = [42]
        case .valueCountMismatch: profile.samples[0].values = [1]
        case .sampleTypeWithDash: profile.sampleTypes[0].type = profile.string("cpu-samples")
        case .invalidUTF8String: profile.strings.append([0xFF, 0xFE])
        case .olderThanOneHour: profile.timeNanos = Int64((now - 2 * 3600) * 1e9)
        case .newerThanTenMinutes: profile.timeNanos = Int64((now + 3600) * 1e9)
        }
        return profile.encode()
    }

    /// A fragment of the error message.
    var message: String {
        switch self {
        case .notProtobuf: "failed to parse pprof"
        case .noSampleTypes: "no sample types"
        case .stringTableStartsNonEmpty: "string table must start with an empty string"
        case .stringIndexOutOfRange: "function name string index 99 out of range"
        case .locationIDZero: "location id is 0"
        case .functionIDZero: "function id is 0"
        case .unknownLocation: "unknown location id 42"
        case .unknownFunction: "unknown function id 42"
        case .valueCountMismatch: "sample has 1 values, want 2"
        case .sampleTypeWithDash: "sample type contains -"
        case .invalidUTF8String: "invalid utf8 string hex: fffe"
        case .olderThanOneHour, .newerThanTenMinutes: "is outside of ingestion window"
        }
    }
}

/// Series labels that break one rule.
enum BadLabels: String, CaseIterable, Sendable {
    case tooManyNames
    case invalidName
    case nameStartsWithDigit
    case nameTooLong
    case valueTooLong
    case duplicateName
    case missingMetricName
    case invalidMetricName
    case invalidUTF8Value

    func series(_ profile: [UInt8]) -> TestSeries {
        switch self {
        case .tooManyNames: return .cpu(profile, extra: (0..<29).map { ("l\($0)", "v") })
        case .invalidName: return .cpu(profile, extra: [("bad-name", "v")])
        case .nameStartsWithDigit: return .cpu(profile, extra: [("1abc", "v")])
        case .nameTooLong: return .cpu(profile, extra: [(String(repeating: "n", count: 1025), "v")])
        case .valueTooLong: return .cpu(profile, extra: [("env", String(repeating: "v", count: 2049))])
        case .duplicateName: return .cpu(profile, extra: [("env", "a"), ("env", "b")])
        case .missingMetricName: return TestSeries(labels: [("service_name", "checkout")], profiles: [profile])
        case .invalidMetricName: return TestSeries(labels: [("__name__", "process-cpu")], profiles: [profile])
        case .invalidUTF8Value:
            var series = TestSeries.cpu(profile)
            series.labels.append((Array("env".utf8), [0xFF, 0x61]))
            return series
        }
    }

    var message: String {
        switch self {
        case .tooManyNames: "has 31 label names; limit 30"
        case .invalidName: "invalid label name 'bad-name'"
        case .nameStartsWithDigit: "invalid label name '1abc'"
        case .nameTooLong: "has label name too long"
        case .valueTooLong: "has label value too long"
        case .duplicateName: "has duplicate label name: 'env'"
        case .missingMetricName, .invalidMetricName: "invalid metric name"
        case .invalidUTF8Value: "not valid UTF-8"
        }
    }
}

@Suite("Validation", .timeLimit(.minutes(3)))
struct ValidationTests {
    @Test("profiles breaking a rule get 400 invalid_argument", arguments: BadProfile.allCases)
    func badProfile(_ bad: BadProfile) async throws {
        try await withServer { server async throws in
            let reply = try await push(server, [.cpu(bad.bytes)])
            #expect(reply.status == 400)
            #expect(reply.headers["Content-Type"].first == "application/json")
            let error = try #require(reply.connectError)
            #expect(error.code == "invalid_argument")
            #expect(error.message.contains(bad.message), "\(error.message)")
            #expect(server.receivedSeries.isEmpty)
            #expect(server.requestLog.last?.connectCode == "invalid_argument")
        }
    }

    @Test("series labels breaking a rule get 400 invalid_argument", arguments: BadLabels.allCases)
    func badLabels(_ bad: BadLabels) async throws {
        try await withServer { server async throws in
            let reply = try await push(server, [bad.series(TestProfile.valid().encode())])
            #expect(reply.status == 400)
            let error = try #require(reply.connectError)
            #expect(error.code == "invalid_argument")
            #expect(error.message.contains(bad.message), "\(error.message)")
            #expect(server.receivedSeries.isEmpty)
        }
    }

    @Test("labels at the limits are accepted: 30 names, 1,024-byte names, 2,048-byte values")
    func labelLimits() async throws {
        let profile = TestProfile.valid().encode()
        let series = TestSeries.cpu(
            profile,
            extra: (0..<27).map { ("l\($0)", "v") } + [
                (String(repeating: "n", count: 1024), String(repeating: "v", count: 2048))
            ]
        )
        try await withServer { server async throws in
            #expect(try await push(server, [series]).status == 200)
            #expect(server.receivedSeries.first?.labels.count == 30)
        }
    }

    @Test("16,000 samples are accepted, 16,001 rejected")
    func sampleLimit() async throws {
        func profile(samples: Int) -> [UInt8] {
            var profile = TestProfile.valid()
            let stack = profile.samples[0].locations
            profile.samples = (0..<samples).map { _ in TestProfile.Sample(locations: stack, values: [1, 10]) }
            return profile.encode()
        }
        try await withServer { server async throws in
            #expect(try await push(server, [.cpu(profile(samples: 16_000))]).status == 200)
            #expect(server.receivedSeries.first?.profile.samples.count == 16_000)

            let reply = try await push(server, [.cpu(profile(samples: 16_001))])
            #expect(reply.status == 400)
            #expect(
                reply.connectError?.message.contains(
                    "exceeds the samples count limit (max_profile_stacktrace_samples, actual: 16001, limit: 16000)"
                ) == true
            )
            #expect(server.receivedSeries.count == 1)
        }
    }

    @Test("the 4 MiB limit applies to decompressed bytes, gzip-compressed or not")
    func sizeLimit() async throws {
        func profile(padding: Int) -> [UInt8] {
            var profile = TestProfile.valid()
            profile.strings.append([UInt8](repeating: 0x61, count: padding))
            return profile.encode()
        }
        let large = profile(padding: 5 << 20)
        let small = try Gzip.compress(profile(padding: 3 << 20))
        try await withServer { server async throws in
            #expect(try await push(server, [.cpu(small)]).status == 200)
            #expect(small.count < 1 << 20)

            for bytes in [try Gzip.compress(large), large] {
                let reply = try await push(server, [.cpu(bytes)])
                #expect(reply.status == 400)
                #expect(
                    reply.connectError?.message.contains(
                        "exceeds the size limit (max_profile_size_byte, actual: \(large.count), limit: 4194304)"
                    ) == true,
                    "\(reply.connectError?.message ?? reply.text)"
                )
            }
            #expect(server.receivedSeries.count == 1)
        }
    }

    @Test("stacks deeper than 1,000 frames are truncated to the root-side 1,000, not rejected")
    func deepStacks() async throws {
        var profile = TestProfile.valid()
        // Leaf first: f1199 is the leaf, f0 the root.
        let stack = (0..<1200).reversed().map { profile.frame("f\($0)") }
        profile.samples.append(TestProfile.Sample(locations: stack, values: [5, 50]))
        try await withServer { server async throws in
            #expect(try await push(server, [.cpu(profile.encode())]).status == 200)
            let decoded = try #require(server.receivedSeries.first?.profile)
            let deep = try #require(decoded.samples.last)
            #expect(deep.stack.count == 1000)
            #expect(deep.stack.first == "f999")
            #expect(deep.stack.last == "f0")
            #expect(decoded.truncatedStacks == 1)
            #expect(decoded.samples[0].stack == ["work", "main"])
        }
    }

    @Test("profiles inside the ingestion window are accepted: 59 minutes old, 9 minutes ahead")
    func ingestionWindow() async throws {
        let now = Date().timeIntervalSince1970
        try await withServer { server async throws in
            for offset in [-59.0 * 60, 9.0 * 60] {
                var profile = TestProfile.valid()
                profile.timeNanos = Int64((now + offset) * 1e9)
                #expect(try await push(server, [.cpu(profile.encode())]).status == 200)
            }
            #expect(server.receivedSeries.count == 2)
        }
    }
}
