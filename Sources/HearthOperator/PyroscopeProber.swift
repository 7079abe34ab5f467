// PyroscopeProber.swift: is Pyroscope ready? `GET <url>/ready` with a timeout; injectable for tests, cached per
// URL so a thousand targets sharing one backend cost one probe per TTL.

import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// The outcome of one readiness probe.
public struct ProbeResult: Sendable, Hashable {
    public var reachable: Bool
    /// What happened (`GET http://…/ready: 503`), never credentials.
    public var message: String
    public init(reachable: Bool, message: String) {
        self.reachable = reachable
        self.message = message
    }
}

/// Checks a Pyroscope backend's readiness.
public protocol PyroscopeProber: Sendable {
    func probe(url: String, tenantID: String?) async -> ProbeResult
}

/// A prober from a closure (tests).
public struct PyroscopeProbeFunction: PyroscopeProber {
    let body: @Sendable (String, String?) async -> ProbeResult
    public init(_ body: @escaping @Sendable (String, String?) async -> ProbeResult) { self.body = body }
    public func probe(url: String, tenantID: String?) async -> ProbeResult { await self.body(url, tenantID) }
}

/// `GET <url>/ready` over HTTP with a timeout.
public struct HTTPPyroscopeProber: PyroscopeProber {
    let client: HTTPClient
    let timeout: Duration

    public init(client: HTTPClient = .shared, timeout: Duration = .seconds(3)) {
        self.client = client
        self.timeout = timeout
    }

    public func probe(url: String, tenantID: String?) async -> ProbeResult {
        let target = url + "/ready"
        var request = HTTPClientRequest(url: target)
        request.method = .GET
        if let tenantID { request.headers.add(name: "X-Scope-OrgID", value: tenantID) }
        do {
            let response = try await self.client.execute(request, timeout: TimeAmount(self.timeout))
            _ = try? await response.body.collect(upTo: 64 << 10)
            if response.status.code == 200 {
                return ProbeResult(reachable: true, message: "GET \(target) answered 200")
            }
            return ProbeResult(reachable: false, message: "GET \(target) answered \(response.status.code)")
        } catch {
            return ProbeResult(
                reachable: false,
                message: "GET \(target) failed: \(String(describing: error).prefix(200))"
            )
        }
    }
}

/// Reuses results per (URL, tenant) for a TTL.
final class CachingProber: Sendable {
    struct Entry {
        var result: ProbeResult
        var at: ContinuousClock.Instant
    }
    let prober: any PyroscopeProber
    let ttl: Duration
    let cache = Mutex<[String: Entry]>([:])

    init(_ prober: any PyroscopeProber, ttl: Duration) {
        self.prober = prober
        self.ttl = ttl
    }

    func probe(url: String, tenantID: String?) async -> ProbeResult {
        let key = url + "\u{1}" + (tenantID ?? "")
        let now = ContinuousClock.now
        if let entry = self.cache.withLock({ $0[key] }), now - entry.at < self.ttl { return entry.result }
        let result = await self.prober.probe(url: url, tenantID: tenantID)
        self.cache.withLock { $0[key] = Entry(result: result, at: .now) }
        return result
    }

    /// Forgets every result (a Service changed).
    func invalidate() { self.cache.withLock { $0.removeAll() } }
}
