// TestSupport.swift: a tiny protobuf writer to hand-build pprof profiles and push requests (valid and broken),
// and HTTP helpers over AsyncHTTPClient.

import AsyncHTTPClient
import Foundation
import Glibc
import HearthProfile
import NIOCore
import NIOHTTP1
import PyroscopeTestServer

/// Protobuf wire format, just enough for pprof and PushRequest.
struct ProtoWriter {
    var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            self.bytes.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        self.bytes.append(UInt8(value))
    }

    mutating func key(_ number: Int, _ wireType: UInt64) { self.varint(UInt64(number) << 3 | wireType) }

    mutating func uint(_ number: Int, _ value: UInt64) {
        self.key(number, 0)
        self.varint(value)
    }

    mutating func int(_ number: Int, _ value: Int64) { self.uint(number, UInt64(bitPattern: value)) }

    mutating func bytes(_ number: Int, _ value: [UInt8]) {
        self.key(number, 2)
        self.varint(UInt64(value.count))
        self.bytes += value
    }

    mutating func string(_ number: Int, _ value: String) { self.bytes(number, Array(value.utf8)) }

    mutating func message(_ number: Int, _ build: (inout ProtoWriter) -> Void) {
        var inner = ProtoWriter()
        build(&inner)
        self.bytes(number, inner.bytes)
    }

    mutating func packed(_ number: Int, _ values: [UInt64]) {
        var inner = ProtoWriter()
        for value in values { inner.varint(value) }
        self.bytes(number, inner.bytes)
    }
}

/// A pprof profile built field by field, so tests can break any rule.
struct TestProfile {
    struct Sample {
        var locations: [UInt64]
        var values: [Int64]
        var labels: [(key: Int64, str: Int64)] = []
    }

    /// Raw entries, so a test can put invalid UTF-8 in.
    var strings: [[UInt8]] = [[]]
    var sampleTypes: [(type: Int64, unit: Int64)] = []
    var samples: [Sample] = []
    /// (id, function ids of its lines).
    var locations: [(id: UInt64, functions: [UInt64])] = []
    /// (id, name string index).
    var functions: [(id: UInt64, name: Int64)] = []
    var timeNanos: Int64 = Int64(Date().timeIntervalSince1970 * 1e9)
    var period: Int64 = 10_000_000
    /// Encode location ids and values unpacked (one field each), as some encoders do.
    var unpacked = false

    mutating func string(_ value: String) -> Int64 {
        if let index = self.strings.firstIndex(of: Array(value.utf8)) { return Int64(index) }
        self.strings.append(Array(value.utf8))
        return Int64(self.strings.count - 1)
    }

    /// Adds a function and a one-line location for it; returns the location id.
    mutating func frame(_ name: String) -> UInt64 {
        let nameIndex = self.string(name)
        if let existing = self.functions.first(where: { $0.name == nameIndex }) {
            return self.locations.first { $0.functions == [existing.id] }!.id
        }
        let id = UInt64(self.functions.count + 1)
        self.functions.append((id, nameIndex))
        self.locations.append((id, [id]))
        return id
    }

    /// `samples/count` and `cpu/nanoseconds`, with stacks `work <- main` (3) and `idle <- main` (1), leaf first.
    static func valid() -> TestProfile {
        var profile = TestProfile()
        profile.sampleTypes = [
            (profile.string("samples"), profile.string("count")),
            (profile.string("cpu"), profile.string("nanoseconds")),
        ]
        let main = profile.frame("main")
        let work = profile.frame("work")
        let idle = profile.frame("idle")
        let thread = profile.string("thread")
        profile.samples = [
            Sample(locations: [work, main], values: [3, 30_000_000], labels: [(thread, profile.string("worker"))]),
            Sample(locations: [idle, main], values: [1, 10_000_000]),
        ]
        return profile
    }

    func encode() -> [UInt8] {
        var writer = ProtoWriter()
        for sampleType in self.sampleTypes {
            writer.message(1) {
                $0.int(1, sampleType.type)
                $0.int(2, sampleType.unit)
            }
        }
        for sample in self.samples {
            writer.message(2) { message in
                if self.unpacked {
                    for location in sample.locations { message.uint(1, location) }
                    for value in sample.values { message.int(2, value) }
                } else {
                    message.packed(1, sample.locations)
                    message.packed(2, sample.values.map { UInt64(bitPattern: $0) })
                }
                for label in sample.labels {
                    message.message(3) {
                        $0.int(1, label.key)
                        $0.int(2, label.str)
                    }
                }
            }
        }
        for location in self.locations {
            writer.message(4) { message in
                message.uint(1, location.id)
                message.uint(3, 0x1000 + location.id)
                for function in location.functions { message.message(4) { $0.uint(1, function) } }
            }
        }
        for function in self.functions {
            writer.message(5) {
                $0.uint(1, function.id)
                $0.int(2, function.name)
            }
        }
        for string in self.strings { writer.bytes(6, string) }
        writer.int(9, self.timeNanos)
        writer.int(10, 10_000_000_000)
        let cpu = self.strings.firstIndex(of: Array("cpu".utf8)).map(Int64.init) ?? 0
        let nanoseconds = self.strings.firstIndex(of: Array("nanoseconds".utf8)).map(Int64.init) ?? 0
        writer.message(11) {
            $0.int(1, cpu)
            $0.int(2, nanoseconds)
        }
        writer.int(12, self.period)
        return writer.bytes
    }
}

/// One RawProfileSeries: labels as raw bytes pairs allowed, so invalid UTF-8 can be sent.
struct TestSeries {
    var labels: [(name: [UInt8], value: [UInt8])]
    var profiles: [[UInt8]]

    init(labels: [(String, String)], profiles: [[UInt8]]) {
        self.labels = labels.map { (Array($0.0.utf8), Array($0.1.utf8)) }
        self.profiles = profiles
    }

    static func cpu(_ profile: [UInt8], service: String = "checkout", extra: [(String, String)] = []) -> TestSeries {
        TestSeries(labels: [("__name__", "process_cpu"), ("service_name", service)] + extra, profiles: [profile])
    }
}

func pushBody(_ series: [TestSeries]) -> [UInt8] {
    var writer = ProtoWriter()
    for entry in series {
        writer.message(1) { message in
            for label in entry.labels {
                message.message(1) {
                    $0.bytes(1, label.name)
                    $0.bytes(2, label.value)
                }
            }
            for (index, profile) in entry.profiles.enumerated() {
                message.message(2) {
                    $0.bytes(1, profile)
                    $0.string(2, "sample-\(index)")
                }
            }
        }
    }
    return writer.bytes
}

// MARK: HTTP

struct Reply {
    var status: Int
    var headers: HTTPHeaders
    var body: [UInt8]

    var text: String { String(decoding: self.body, as: UTF8.self) }

    /// The `code` and `message` of a connect error body.
    var connectError: (code: String, message: String)? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(self.body)) as? [String: Any],
            let code = object["code"] as? String
        else { return nil }
        return (code, object["message"] as? String ?? "")
    }
}

func send(
    _ server: PyroscopeTestServer,
    _ method: HTTPMethod = .POST,
    _ path: String,
    body: [UInt8]? = nil,
    headers: [(String, String)] = []
) async throws -> Reply {
    var request = HTTPClientRequest(url: server.url + path)
    request.method = method
    for (name, value) in headers { request.headers.add(name: name, value: value) }
    if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
    let buffer = try await response.body.collect(upTo: 16 << 20)
    return Reply(status: Int(response.status.code), headers: response.headers, body: Array(buffer.readableBytesView))
}

/// Pushes series the way the agent does: connect headers, optionally the whole body gzipped.
func push(
    _ server: PyroscopeTestServer,
    _ series: [TestSeries],
    tenant: String? = nil,
    gzipBody: Bool = false,
    headers: [(String, String)] = []
) async throws -> Reply {
    var body = pushBody(series)
    var allHeaders = [("Content-Type", "application/proto"), ("Connect-Protocol-Version", "1")] + headers
    if gzipBody {
        body = try Gzip.compress(body)
        allHeaders.append(("Content-Encoding", "gzip"))
    }
    if let tenant { allHeaders.append(("X-Scope-OrgID", tenant)) }
    return try await send(server, .POST, "/push.v1.PusherService/Push", body: body, headers: allHeaders)
}

/// Whether a TCP connection to 127.0.0.1:`port` is accepted (false when refused).
func canConnect(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let result = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    return result == 0
}

/// Runs `body` against a fresh server on a free port.
func withServer<Result: Sendable>(_ body: (PyroscopeTestServer) async throws -> Result) async throws -> Result {
    try await PyroscopeTestServer.withRunning(body)
}
