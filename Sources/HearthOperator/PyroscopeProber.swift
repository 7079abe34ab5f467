// PyroscopeProber.swift: is Pyroscope ready? `GET <url>/ready` with a timeout; injectable for tests; results kept
// per backend and refreshed once per period, however many targets share it.

import AsyncHTTPClient
import Foundation
import KubeModel
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

/// Probe results per backend (URL and tenant), shared by the targets that use it. A reconcile reuses a result
/// younger than the TTL; ``refresh(now:)`` probes each backend again once per period (the ready period while it
/// answers, the not-ready one while it does not) and names the targets whose status a changed result changes. So
/// a thousand targets on ten backends cost ten probes a period, and no target is reconciled just to probe.
final class BackendProbes: Sendable {
    struct Backend: Hashable, Sendable {
        var url: String
        var tenantID: String?
    }

    struct Entry {
        /// Nil until the first probe answered.
        var result: ProbeResult?
        var at: ContinuousClock.Instant
        var users: Set<ObjectKey> = []
    }

    struct State {
        var entries: [Backend: Entry] = [:]
        var backendOf: [ObjectKey: Backend] = [:]
        /// The probe under way per backend: targets asking meanwhile wait for it instead of probing again.
        var inFlight: [Backend: Task<ProbeResult, Never>] = [:]
    }

    let prober: any PyroscopeProber
    let ttl: Duration
    let readyPeriod: Duration
    let notReadyPeriod: Duration
    let state = Mutex(State())

    init(_ prober: any PyroscopeProber, ttl: Duration, readyPeriod: Duration, notReadyPeriod: Duration) {
        self.prober = prober
        self.ttl = ttl
        self.readyPeriod = readyPeriod
        self.notReadyPeriod = notReadyPeriod
    }

    /// The backend's result for `target` (which now uses it), probing when the cached one is older than the TTL
    /// (targets asking meanwhile share that probe); and the other users to reconcile when the result changed.
    func probe(
        url: String,
        tenantID: String?,
        for target: ObjectKey,
        now: ContinuousClock.Instant = .now
    ) async -> (result: ProbeResult, othersChanged: [ObjectKey]) {
        let backend = Backend(url: url, tenantID: tenantID)
        enum Next {
            case cached(ProbeResult)
            case join(Task<ProbeResult, Never>)
            case lead(Task<ProbeResult, Never>)
        }
        let prober = self.prober
        let next = self.state.withLock { state -> Next in
            self.use(backend, by: target, in: &state)
            if let entry = state.entries[backend], let result = entry.result, now - entry.at < self.ttl {
                return .cached(result)
            }
            if let running = state.inFlight[backend] { return .join(running) }
            let task = Task { await prober.probe(url: url, tenantID: tenantID) }
            state.inFlight[backend] = task
            return .lead(task)
        }
        switch next {
        case .cached(let result): return (result, [])
        case .join(let task): return (await task.value, [])
        case .lead(let task):
            let result = await task.value
            let others = self.record(result, for: backend, at: .now, endingProbe: true)
            return (result, others.filter { $0 != target })
        }
    }

    /// `target` no longer probes (gone, invalid, suspended, or its backend is unresolved).
    func forget(_ target: ObjectKey) {
        self.state.withLock { state in
            guard let backend = state.backendOf.removeValue(forKey: target) else { return }
            state.entries[backend]?.users.remove(target)
            if state.entries[backend]?.users.isEmpty == true { state.entries.removeValue(forKey: backend) }
        }
    }

    /// Probes every backend whose period passed; returns the targets of those whose result changed.
    func refresh(now: ContinuousClock.Instant = .now) async -> [ObjectKey] {
        let due = self.state.withLock { state in
            state.entries.filter { _, entry in
                guard let result = entry.result else { return false }
                return now - entry.at >= (result.reachable ? self.readyPeriod : self.notReadyPeriod)
            }.map { $0.key }
        }
        var changed: Set<ObjectKey> = []
        for backend in due {
            let result = await self.prober.probe(url: backend.url, tenantID: backend.tenantID)
            changed.formUnion(self.record(result, for: backend, at: .now))
        }
        return changed.sorted()
    }

    /// Stores a result; the backend's users when it differs from the one before.
    func record(
        _ result: ProbeResult,
        for backend: Backend,
        at: ContinuousClock.Instant,
        endingProbe: Bool = false
    ) -> [ObjectKey] {
        self.state.withLock { state in
            if endingProbe { state.inFlight.removeValue(forKey: backend) }
            guard var entry = state.entries[backend] else { return [] }
            // A first result is no news for other targets: each probed (or waits for) its own.
            let changed = entry.result != nil && entry.result != result
            entry.result = result
            entry.at = at
            state.entries[backend] = entry
            return changed ? Array(entry.users) : []
        }
    }

    private func use(_ backend: Backend, by target: ObjectKey, in state: inout State) {
        if let previous = state.backendOf.updateValue(backend, forKey: target), previous != backend {
            state.entries[previous]?.users.remove(target)
            if state.entries[previous]?.users.isEmpty == true { state.entries.removeValue(forKey: previous) }
        }
        if state.entries[backend] == nil { state.entries[backend] = Entry(result: nil, at: .now) }
        state.entries[backend]?.users.insert(target)
    }
}
